//! The governance rules of the state machine (`docs/contracts.md` §8): proposals, votes,
//! withdrawals and key rotations, and what the end of each block enacts or expires.

use std::sync::Arc;

use surplus_ledger::{Entry, EntryKind, Hash, PublicKey, ValidatorSet};
use surplus_market::Market;

use super::{Refusal, State};
use crate::governance::{
    encode_outcome, Action, ConsensusParams, Outcome, Proposal, Rotation, Validator,
    ENACTMENT_DELAY, MAX_OPEN_PROPOSALS, MAX_PROPOSAL_WINDOW,
};
use crate::{Lease, Tx};

impl State {
    /// The validator set in force for the next block, in its order.
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    /// The validator set in force for the next block, as the ledger names it.
    pub fn validator_set(&self) -> ValidatorSet {
        ValidatorSet {
            validators: self.validators.iter().map(|v| v.key).collect(),
            powers: self.validators.iter().map(|v| v.power).collect(),
        }
    }

    /// Whether `key` is a validator of the set in force for the next block.
    pub fn is_validator(&self, key: &PublicKey) -> bool {
        self.validators.iter().any(|v| v.key == *key)
    }

    /// The consensus parameters set by governance, if any (otherwise each node's own).
    pub fn consensus_params(&self) -> Option<ConsensusParams> {
        self.consensus
    }

    /// The proposals open or passed and waiting for their height, in id order.
    pub fn proposals(&self) -> impl Iterator<Item = &Proposal> {
        self.proposals.values().map(|p| &**p)
    }

    /// A proposal open or waiting for its height.
    pub fn proposal(&self, id: &Hash) -> Option<&Proposal> {
        self.proposals.get(id).map(|p| &**p)
    }

    /// The rotation of `key`, if it was rotated.
    pub fn rotation(&self, key: &PublicKey) -> Option<Rotation> {
        self.rotated.get(key).copied()
    }

    /// Every rotated key with its rotation, in old-key order.
    pub fn rotations(&self) -> impl Iterator<Item = (&PublicKey, &Rotation)> {
        self.rotated.iter()
    }

    /// The key that now speaks for `key`: itself, or the end of its chain of rotations.
    /// The live leases `key` provides now: those of its own fills and those of every key
    /// rotated (directly or through others) to it, whose duties pass to it (section 8); none
    /// for a rotated key.
    pub fn provided_by<'a>(&'a self, key: &PublicKey) -> impl Iterator<Item = &'a Lease> + 'a {
        self.keys_of(key)
            .into_iter()
            .flat_map(move |k| self.provider_leases(&k).collect::<Vec<_>>())
    }

    /// `key` and every key rotated (directly or through others) to it; none if `key` itself
    /// was rotated (it speaks for nothing any more).
    pub fn keys_of(&self, key: &PublicKey) -> Vec<PublicKey> {
        if self.rotated.contains_key(key) {
            return Vec::new();
        }
        let mut keys = vec![*key];
        keys.extend(self.rotated.keys().filter(|old| self.current_key(old) == *key).copied());
        keys
    }

    /// A rotation's move of `old`'s balance and bond to `new` (an empty account stays as it
    /// is).
    fn move_funds(&mut self, old: &PublicKey, new: &PublicKey) {
        let a = self.account(old);
        if a.balance > 0 {
            *self.balance_mut(old) -= a.balance;
            *self.balance_mut(new) += a.balance;
        }
        if a.bond > 0 {
            self.accounts.entry_or_default(*old).bond = 0;
            self.accounts.entry_or_default(*new).bond += a.bond;
        }
    }

    /// The key a chain of rotations leads `key` to (`key` itself if it was never rotated).
    pub fn current_key(&self, key: &PublicKey) -> PublicKey {
        let mut k = *key;
        // Each rotation goes to a key never rotated before, so the chain ends; the bound only
        // guards against a state that breaks that rule.
        for _ in 0..=self.rotated.len() {
            match self.rotated.get(&k) {
                Some(r) => k = r.new,
                None => break,
            }
        }
        k
    }

    /// Whether the state allows `action` now: what it adds is not there yet, what it removes or
    /// changes is, and the set and catalogue are never left empty.
    pub(crate) fn action_allowed(&self, action: &Action) -> Result<(), String> {
        let has = |k: &PublicKey| self.validators.iter().any(|v| v.key == *k);
        let catalogue = &self.params.catalogue;
        match action {
            Action::AddValidator { key, power, .. } => {
                if has(key) {
                    return Err(format!("{key} is a validator already"));
                }
                if self.rotated.contains_key(key) {
                    return Err(format!("{key} was rotated away"));
                }
                let total: u64 = self.validators.iter().map(|v| v.power).sum();
                if total.saturating_add(*power) > surplus_ledger::MAX_TOTAL_POWER
                    || self.validators.len() >= surplus_ledger::MAX_VALIDATORS
                {
                    return Err("the set would exceed the ledger's limits".into());
                }
            }
            Action::RemoveValidator { key } => {
                if !has(key) {
                    return Err(format!("{key} is not a validator"));
                }
                if self.validators.len() == 1 {
                    return Err("the last validator cannot be removed".into());
                }
            }
            Action::SetPower { key, power } => {
                if !has(key) {
                    return Err(format!("{key} is not a validator"));
                }
                let others: u64 =
                    self.validators.iter().filter(|v| v.key != *key).map(|v| v.power).sum();
                if others.saturating_add(*power) > surplus_ledger::MAX_TOTAL_POWER {
                    return Err("the set would exceed the ledger's limits".into());
                }
            }
            Action::SetFees { .. } | Action::SetConsensus { .. } => {}
            Action::AddClass { class } => {
                if catalogue.classes.iter().any(|c| c.id == class.id) {
                    return Err(format!("class {} is in the catalogue already", class.id));
                }
            }
            Action::RetireClass { id } => {
                if !catalogue.classes.iter().any(|c| c.id == *id) {
                    return Err(format!("class {id} is not in the catalogue"));
                }
                if catalogue.classes.len() == 1 {
                    return Err("the last class cannot be retired".into());
                }
            }
            Action::AddRegion { region } => {
                if catalogue.regions.iter().any(|r| r.id == region.id) {
                    return Err(format!("region {} is in the catalogue already", region.id));
                }
            }
            Action::RetireRegion { id } => {
                if !catalogue.regions.iter().any(|r| r.id == *id) {
                    return Err(format!("region {id} is not in the catalogue"));
                }
                if catalogue.regions.len() == 1 {
                    return Err("the last region cannot be retired".into());
                }
            }
            Action::RotateValidator { old, new } => {
                if !has(old) {
                    return Err(format!("{old} is not a validator"));
                }
                self.fresh_key(new)?;
            }
        }
        Ok(())
    }

    /// A key may become a rotation's new key: not a validator, never rotated away, and without
    /// a transaction of its own (its account's sequence is 0).
    fn fresh_key(&self, key: &PublicKey) -> Result<(), String> {
        if self.is_validator(key) {
            return Err(format!("{key} is a validator already"));
        }
        if self.rotated.contains_key(key) {
            return Err(format!("{key} was rotated away"));
        }
        if self.account(key).seq != 0 {
            return Err(format!("{key} has signed transactions of its own"));
        }
        Ok(())
    }

    /// The rules of a governance transaction against the state, for an entry that executes in
    /// block `height`.
    pub(crate) fn check_gov(
        &self,
        author: &PublicKey,
        tx: &Tx,
        height: u64,
    ) -> Result<(), Refusal> {
        let open = |id: &Hash| -> Result<&Proposal, Refusal> {
            let p =
                self.proposals.get(id).ok_or_else(|| Refusal::UnknownProposal(hex::encode(id)))?;
            if p.passed.is_some() {
                return Err(Refusal::ProposalClosed);
            }
            Ok(p)
        };
        match tx {
            Tx::GovPropose { action, effective, .. } => {
                if !self.is_validator(author) {
                    return Err(Refusal::NotValidator);
                }
                let earliest = height.saturating_add(ENACTMENT_DELAY);
                let latest = height.saturating_add(MAX_PROPOSAL_WINDOW);
                if *effective < earliest || *effective > latest {
                    return Err(Refusal::BadProposal(format!(
                        "effective height {effective}: from {earliest} ({ENACTMENT_DELAY} blocks \
                         after the block that takes it, {height}) to {latest}"
                    )));
                }
                if self.proposals.len() >= MAX_OPEN_PROPOSALS {
                    return Err(Refusal::BadProposal(format!(
                        "{MAX_OPEN_PROPOSALS} proposals are open already"
                    )));
                }
                self.action_allowed(action).map_err(Refusal::BadProposal)?;
            }
            Tx::GovVote { proposal, .. } => {
                let p = open(proposal)?;
                if !p.voters.iter().any(|(k, _)| k == author) {
                    return Err(Refusal::NotValidator);
                }
                if p.votes.iter().any(|(k, _)| k == author) {
                    return Err(Refusal::AlreadyVoted);
                }
            }
            Tx::GovWithdraw { proposal, .. } => {
                let p = open(proposal)?;
                if p.proposer != *author {
                    return Err(Refusal::NotEntitled("proposer".into()));
                }
            }
            Tx::RotateKey { new_key, .. } => {
                if new_key == author {
                    return Err(Refusal::RotationRefused("the new key is the old one".into()));
                }
                self.fresh_key(new_key).map_err(Refusal::RotationRefused)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Applies a checked governance transaction of entry `id`; returns its consequences.
    pub(super) fn apply_gov(&mut self, author: &PublicKey, tx: Tx, id: Hash) -> Vec<Entry> {
        match tx {
            Tx::GovPropose { action, effective, .. } => {
                let p = Proposal {
                    id,
                    proposer: *author,
                    action,
                    height: self.height,
                    effective,
                    passed: None,
                    voters: self.validators.iter().map(|v| (v.key, v.power)).collect(),
                    votes: Vec::new(),
                };
                self.proposals.insert(id, Arc::new(p));
                Vec::new()
            }
            Tx::GovVote { proposal, yes, .. } => {
                let height = self.height;
                let Some(p) = self.proposals.get_mut(&proposal).map(Arc::make_mut) else {
                    return Vec::new();
                };
                let at = p.votes.partition_point(|(k, _)| k < author);
                p.votes.insert(at, (*author, yes));
                let (yes_power, no_power) = p.tally();
                if yes_power >= p.quorum() {
                    p.passed = Some(height);
                    Vec::new()
                } else if no_power > p.total_power() - p.quorum() {
                    self.proposals.remove(&proposal);
                    vec![outcome_entry(&proposal, Outcome::Rejected)]
                } else {
                    Vec::new()
                }
            }
            Tx::GovWithdraw { proposal, .. } => {
                self.proposals.remove(&proposal);
                Vec::new()
            }
            Tx::RotateKey { new_key, .. } => {
                let old = *author;
                self.move_funds(&old, &new_key);
                self.rotated.insert(old, Rotation { new: new_key, height: self.height });
                if let Some(i) = self.validators.iter().position(|v| v.key == old) {
                    Arc::make_mut(&mut self.validators)[i].key = new_key;
                }
                // Orders signed by the old key leave the book: new leases use the new key.
                self.book.withdraw_author(&old);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// The end of block `height`, after its auction: each proposal that passed for the next
    /// height is enacted (or void), each open one past its deadline expires, in proposal id
    /// order; then, if the validator set changed in the block, the new set.
    pub(super) fn end_of_block(
        &mut self,
        height: u64,
        validators_before: &Arc<Vec<Validator>>,
        entries: &mut Vec<Entry>,
    ) {
        let due: Vec<(Hash, bool)> = self
            .proposals
            .values()
            .filter_map(|p| match p.passed {
                Some(_) if p.effective == height + 1 => Some((p.id, true)),
                None if height >= p.deadline() => Some((p.id, false)),
                _ => None,
            })
            .collect();
        for (id, passed) in due {
            let Some(p) = self.proposals.remove(&id) else { continue };
            let outcome = if !passed {
                Outcome::Expired
            } else if self.action_allowed(&p.action).is_ok() {
                self.enact(&p.action, height);
                Outcome::Enacted
            } else {
                Outcome::Void
            };
            entries.push(outcome_entry(&id, outcome));
        }
        if self.validators != *validators_before {
            entries.push(Entry::system(
                EntryKind::VALIDATOR_SET,
                self.validator_set().encode_weighted(),
            ));
        }
    }

    /// Applies an allowed action.
    fn enact(&mut self, action: &Action, height: u64) {
        fn set(s: &mut State) -> &mut Vec<Validator> {
            Arc::make_mut(&mut s.validators)
        }
        match action.clone() {
            Action::AddValidator { key, power, address } => {
                set(self).push(Validator { key, power, address });
            }
            Action::RemoveValidator { key } => set(self).retain(|v| v.key != key),
            Action::SetPower { key, power } => {
                if let Some(v) = set(self).iter_mut().find(|v| v.key == key) {
                    v.power = power;
                }
            }
            Action::RotateValidator { old, new } => {
                if let Some(v) = set(self).iter_mut().find(|v| v.key == old) {
                    v.key = new;
                }
                self.rotated.insert(old, Rotation { new, height });
                self.move_funds(&old, &new);
                self.book.withdraw_author(&old);
            }
            Action::SetFees { fee_bps, penalty_bps } => {
                self.params.fee_bps = fee_bps;
                self.params.penalty_bps = penalty_bps;
            }
            Action::SetConsensus { params } => self.consensus = Some(params),
            Action::AddClass { class } => {
                self.params.catalogue.classes.push(class);
            }
            Action::RetireClass { id } => {
                self.params.catalogue.classes.retain(|c| c.id != id);
                self.book.withdraw_markets(|m: &Market| m.class == id);
            }
            Action::AddRegion { region } => {
                self.params.catalogue.regions.push(region);
            }
            Action::RetireRegion { id } => {
                self.params.catalogue.regions.retain(|r| r.id != id);
                self.book.withdraw_markets(|m: &Market| m.region == id);
            }
        }
        if !action.changes_validators() {
            // Allowed actions keep the catalogue valid; sorting keeps it canonical.
            if let Ok(sorted) = self.params.catalogue.clone().validated() {
                self.params.catalogue = sorted;
            }
            self.params_bytes = self.params.encode();
        }
    }
}

fn outcome_entry(id: &Hash, outcome: Outcome) -> Entry {
    Entry::system(EntryKind::GOV_OUTCOME, encode_outcome(id, outcome))
}
