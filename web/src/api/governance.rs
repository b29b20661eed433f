//! `GET /api/v1/governance` and `GET /api/v1/governance/proposals/{id}`: the validator set with
//! addresses, the parameters in force, proposals with their tallies, rotated keys, and every
//! set the ledger put in force (`docs/governance.md`).

use actix_web::{web, HttpRequest, HttpResponse};

use super::{parse_hash, ApiError, ApiResult, Code, Ctx};
pub use surplus_api::{
    GovernanceView, OperatorVote, ParamsView, ProposalView, RotationView, SetPeriod, Submitted,
};
use surplus_contracts::governance::ENACTMENT_DELAY;

/// The governance state after the head.
pub(crate) async fn governance(ctx: web::Data<Ctx>) -> ApiResult<HttpResponse> {
    let state = ctx.node.state();
    let history = super::off_worker(&ctx, |n| n.validator_history())
        .await?
        .map_err(|e| e.into_api("reading the validator sets"))?;
    let set = state.validator_set();
    let p = &state.params;
    Ok(HttpResponse::Ok().json(GovernanceView {
        chain_id: state.chain_id.clone(),
        height: state.height(),
        enactment_delay: ENACTMENT_DELAY,
        validators: state.validators().to_vec(),
        total_power: set.total_power(),
        quorum: set.quorum(),
        params: ParamsView {
            treasury: p.treasury,
            fee_bps: p.fee_bps,
            penalty_bps: p.penalty_bps,
            classes: p.catalogue.classes.clone(),
            regions: p.catalogue.regions.clone(),
            consensus: state.consensus_params(),
        },
        proposals: state.proposals().map(ProposalView::from).collect(),
        rotations: state
            .rotations()
            .map(|(old, r)| RotationView { old: *old, new: r.new, height: r.height })
            .collect(),
        history: history
            .into_iter()
            .map(|(from_height, s)| SetPeriod {
                from_height,
                validators: s.validators,
                powers: s.powers,
            })
            .collect(),
    }))
}

/// One proposal open or waiting for its height.
pub(crate) async fn proposal(
    ctx: web::Data<Ctx>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_hash(&id, "proposal id")?;
    let state = ctx.node.state();
    let p = state.proposal(&id).ok_or_else(|| {
        ApiError::new(
            Code::UnknownProposal,
            format!(
                "no open or passed proposal {}: it never existed, or it left the state (enacted, \
                 expired, rejected, void or withdrawn: its gov-outcome entry, if any, is in the \
                 ledger)",
                hex::encode(id)
            ),
        )
    })?;
    Ok(HttpResponse::Ok().json(ProposalView::from(p)))
}

/// The node votes on a proposal with its own key (operator only): 202 with the vote's id.
pub(crate) async fn operator_vote(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    body: web::Json<OperatorVote>,
) -> ApiResult<HttpResponse> {
    super::operator::operator_only(&req, &ctx)?;
    let proposal = parse_hash(body.proposal.trim(), "proposal")?;
    let state = ctx.node.state();
    if state.proposal(&proposal).is_none() {
        return Err(ApiError::new(
            Code::UnknownProposal,
            format!("no open proposal {}", hex::encode(proposal)),
        ));
    }
    let id = ctx.node.vote(proposal, body.yes).await.map_err(ApiError::Refused)?;
    Ok(HttpResponse::Accepted().json(Submitted { id }))
}
