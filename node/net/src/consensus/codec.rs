//! Wire and write-ahead-log encoding of the engine's messages.
//!
//! Hand-written with the ledger's `Writer`/`Reader`: every message starts with a version byte,
//! lengths are bounded before anything is allocated, and a decoder never panics on bad input.
//! Signatures are over our own preimages, never over these bytes, so the encoding is free to
//! change with the version byte.

use std::ops::RangeInclusive;

use bytes::Bytes;
use malachitebft_app_channel::app::consensus::LivenessMsg;
use malachitebft_app_channel::app::streaming::StreamContent;
use malachitebft_app_channel::app::types::codec::{Codec, HasEncodedLen};
use malachitebft_app_channel::app::types::core::{
    ExtendedCommitCertificate, ExtendedCommitSignature, NilOrVal, PolkaCertificate, PolkaSignature,
    Round, RoundCertificate, RoundCertificateType, RoundSignature, SignedMessage, ValidatorProof,
    Validity, VoteType,
};
use malachitebft_app_channel::app::types::streaming::{StreamId, StreamMessage};
use malachitebft_app_channel::app::types::sync::{RawDecidedValue, Request, Response, Status};
use malachitebft_app_channel::app::types::{PeerId, ProposedValue, SignedConsensusMsg};
use malachitebft_signing_ed25519::Signature;
use malachitebft_sync::{ValueRequest, ValueResponse};
use surplus_ledger::encoding::{Reader, Writer};
use surplus_ledger::{DecodeError, PublicKey};

use super::context::{Address, Ctx, Height, Proposal, ProposalPart, Value, ValueId, Vote};

/// Version byte at the start of every encoded message.
const VERSION: u8 = 1;
/// Largest block a proposal part may carry.
pub const MAX_PART_BYTES: usize = 16 * 1024 * 1024;
/// Most signatures in a certificate (the ledger's validator limit).
const MAX_SIGNATURES: usize = surplus_ledger::MAX_VALIDATORS;
/// Most decided values in one sync response.
const MAX_SYNC_VALUES: usize = 1024;

/// A message that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("consensus message: {0}")]
pub struct CodecError(String);

impl From<DecodeError> for CodecError {
    fn from(e: DecodeError) -> Self {
        Self(e.to_string())
    }
}

/// The codec for the network, the sync protocol and the WAL.
#[derive(Clone, Copy, Debug, Default)]
pub struct WireCodec;

fn start() -> Writer {
    let mut w = Writer::with_capacity(256);
    w.u8(VERSION);
    w
}

fn open(bytes: &[u8]) -> Result<Reader<'_>, CodecError> {
    let mut r = Reader::new(bytes);
    let v = r.u8("version")?;
    if v != VERSION {
        return Err(CodecError(format!(
            "version {v} is not supported (this node speaks {VERSION})"
        )));
    }
    Ok(r)
}

fn bad(what: &str) -> CodecError {
    CodecError(format!("invalid {what}"))
}

fn put_round(w: &mut Writer, r: Round) {
    w.u64(r.as_i64() as u64);
}

fn get_round(r: &mut Reader<'_>) -> Result<Round, CodecError> {
    let v = r.u64("round")? as i64;
    match v {
        -1 => Ok(Round::Nil),
        0..=0xFFFF_FFFF => Ok(Round::new(v as u32)),
        _ => Err(bad("round")),
    }
}

fn put_addr(w: &mut Writer, a: &Address) {
    w.raw(&a.0 .0);
}

fn get_addr(r: &mut Reader<'_>) -> Result<Address, CodecError> {
    Ok(Address(PublicKey(r.array("address")?)))
}

fn put_sig(w: &mut Writer, s: &Signature) {
    w.raw(&s.to_bytes());
}

fn get_sig(r: &mut Reader<'_>) -> Result<Signature, CodecError> {
    Ok(Signature::from_bytes(r.array("signature")?))
}

fn put_nil_or(w: &mut Writer, v: &NilOrVal<ValueId>) {
    match v {
        NilOrVal::Nil => w.u8(0),
        NilOrVal::Val(id) => w.u8(1).raw(&id.0),
    };
}

fn get_nil_or(r: &mut Reader<'_>) -> Result<NilOrVal<ValueId>, CodecError> {
    match r.u8("value.tag")? {
        0 => Ok(NilOrVal::Nil),
        1 => Ok(NilOrVal::Val(ValueId(r.array("value")?))),
        _ => Err(bad("value tag")),
    }
}

fn put_vote_type(w: &mut Writer, t: VoteType) {
    w.u8(match t {
        VoteType::Prevote => 1,
        VoteType::Precommit => 2,
    });
}

fn get_vote_type(r: &mut Reader<'_>) -> Result<VoteType, CodecError> {
    match r.u8("vote.type")? {
        1 => Ok(VoteType::Prevote),
        2 => Ok(VoteType::Precommit),
        _ => Err(bad("vote type")),
    }
}

fn put_vote(w: &mut Writer, v: &Vote) {
    w.u64(v.height.0);
    put_round(w, v.round);
    put_nil_or(w, &v.value);
    put_vote_type(w, v.vote_type);
    put_addr(w, &v.validator);
}

fn get_vote(r: &mut Reader<'_>) -> Result<Vote, CodecError> {
    Ok(Vote {
        height: Height(r.u64("vote.height")?),
        round: get_round(r)?,
        value: get_nil_or(r)?,
        vote_type: get_vote_type(r)?,
        validator: get_addr(r)?,
    })
}

fn put_signed_vote(w: &mut Writer, v: &SignedMessage<Ctx, Vote>) {
    put_vote(w, &v.message);
    put_sig(w, &v.signature);
}

fn get_signed_vote(r: &mut Reader<'_>) -> Result<SignedMessage<Ctx, Vote>, CodecError> {
    let vote = get_vote(r)?;
    Ok(SignedMessage::new(vote, get_sig(r)?))
}

fn put_proposal(w: &mut Writer, p: &Proposal) {
    w.u64(p.height.0);
    put_round(w, p.round);
    w.raw(&p.value.0);
    put_round(w, p.pol_round);
    put_addr(w, &p.proposer);
}

fn get_proposal(r: &mut Reader<'_>) -> Result<Proposal, CodecError> {
    Ok(Proposal {
        height: Height(r.u64("proposal.height")?),
        round: get_round(r)?,
        value: Value(r.array("proposal.value")?),
        pol_round: get_round(r)?,
        proposer: get_addr(r)?,
    })
}

fn count(
    r: &mut Reader<'_>,
    field: &'static str,
    max: usize,
    min_size: usize,
) -> Result<usize, CodecError> {
    let n = r.u32(field)? as usize;
    if n > max || n.saturating_mul(min_size) > r.remaining() {
        return Err(CodecError(format!("{field}: {n} items do not fit the message")));
    }
    Ok(n)
}

fn put_polka(w: &mut Writer, c: &PolkaCertificate<Ctx>) {
    w.u64(c.height.0);
    put_round(w, c.round);
    w.raw(&c.value_id.0);
    w.u32(c.polka_signatures.len() as u32);
    for s in &c.polka_signatures {
        put_addr(w, &s.address);
        put_sig(w, &s.signature);
    }
}

fn get_polka(r: &mut Reader<'_>) -> Result<PolkaCertificate<Ctx>, CodecError> {
    let height = Height(r.u64("polka.height")?);
    let round = get_round(r)?;
    let value_id = ValueId(r.array("polka.value")?);
    let n = count(r, "polka.count", MAX_SIGNATURES, 96)?;
    let mut polka_signatures = Vec::with_capacity(n);
    for _ in 0..n {
        let address = get_addr(r)?;
        polka_signatures.push(PolkaSignature { address, signature: get_sig(r)? });
    }
    Ok(PolkaCertificate { height, round, value_id, polka_signatures })
}

fn put_round_cert(w: &mut Writer, c: &RoundCertificate<Ctx>) {
    w.u64(c.height.0);
    put_round(w, c.round);
    w.u8(match c.cert_type {
        RoundCertificateType::Skip => 1,
        RoundCertificateType::Precommit => 2,
    });
    w.u32(c.round_signatures.len() as u32);
    for s in &c.round_signatures {
        put_vote_type(w, s.vote_type);
        put_nil_or(w, &s.value_id);
        put_addr(w, &s.address);
        put_sig(w, &s.signature);
    }
}

fn get_round_cert(r: &mut Reader<'_>) -> Result<RoundCertificate<Ctx>, CodecError> {
    let height = Height(r.u64("round_cert.height")?);
    let round = get_round(r)?;
    let cert_type = match r.u8("round_cert.type")? {
        1 => RoundCertificateType::Skip,
        2 => RoundCertificateType::Precommit,
        _ => return Err(bad("round certificate type")),
    };
    let n = count(r, "round_cert.count", MAX_SIGNATURES, 98)?;
    let mut round_signatures = Vec::with_capacity(n);
    for _ in 0..n {
        let vote_type = get_vote_type(r)?;
        let value_id = get_nil_or(r)?;
        let address = get_addr(r)?;
        round_signatures.push(RoundSignature {
            vote_type,
            value_id,
            address,
            signature: get_sig(r)?,
        });
    }
    Ok(RoundCertificate { height, round, cert_type, round_signatures })
}

fn put_part(w: &mut Writer, p: &ProposalPart) {
    w.u64(p.height.0);
    put_round(w, p.round);
    put_addr(w, &p.proposer);
    w.u32(p.block.len() as u32).raw(&p.block);
}

fn get_part(r: &mut Reader<'_>) -> Result<ProposalPart, CodecError> {
    let height = Height(r.u64("part.height")?);
    let round = get_round(r)?;
    let proposer = get_addr(r)?;
    let block = Bytes::copy_from_slice(r.bytes("part.block", MAX_PART_BYTES)?);
    Ok(ProposalPart { height, round, proposer, block })
}

fn put_extended_cert(w: &mut Writer, c: &ExtendedCommitCertificate<Ctx>) {
    w.u64(c.height.0);
    put_round(w, c.round);
    w.raw(&c.value_id.0);
    w.u32(c.commit_signatures.len() as u32);
    for s in &c.commit_signatures {
        put_addr(w, &s.address);
        put_sig(w, &s.signature);
        match &s.extension {
            None => {
                w.u8(0);
            }
            Some(e) => {
                w.u8(1).bytes(&e.message);
                put_sig(w, &e.signature);
            }
        }
    }
}

fn get_extended_cert(r: &mut Reader<'_>) -> Result<ExtendedCommitCertificate<Ctx>, CodecError> {
    let height = Height(r.u64("cert.height")?);
    let round = get_round(r)?;
    let value_id = ValueId(r.array("cert.value")?);
    let n = count(r, "cert.count", MAX_SIGNATURES, 97)?;
    let mut commit_signatures = Vec::with_capacity(n);
    for _ in 0..n {
        let address = get_addr(r)?;
        let signature = get_sig(r)?;
        let extension = match r.u8("cert.extension.tag")? {
            0 => None,
            1 => {
                let bytes = Bytes::copy_from_slice(r.bytes("cert.extension", 64 * 1024)?);
                Some(SignedMessage::new(bytes, get_sig(r)?))
            }
            _ => return Err(bad("extension tag")),
        };
        commit_signatures.push(ExtendedCommitSignature { address, signature, extension });
    }
    Ok(ExtendedCommitCertificate { height, round, value_id, commit_signatures })
}

fn put_peer(w: &mut Writer, p: &PeerId) {
    w.short_bytes(&p.to_bytes());
}

fn get_peer(r: &mut Reader<'_>) -> Result<PeerId, CodecError> {
    PeerId::from_bytes(r.short_bytes("peer")?).map_err(|e| CodecError(format!("peer id: {e}")))
}

macro_rules! codec {
    ($t:ty, $w:ident, $m:ident => $enc:block, $r:ident => $dec:block) => {
        impl Codec<$t> for WireCodec {
            type Error = CodecError;

            fn decode(&self, bytes: Bytes) -> Result<$t, CodecError> {
                let mut $r = open(&bytes)?;
                let v = $dec;
                $r.finish()?;
                Ok(v)
            }

            fn encode(&self, $m: &$t) -> Result<Bytes, CodecError> {
                let mut $w = start();
                $enc;
                Ok(Bytes::from($w.finish()))
            }
        }
    };
}

codec!(Value, w, m => { w.raw(&m.0); }, r => { Value(r.array("value")?) });

codec!(ProposalPart, w, m => { put_part(&mut w, m); }, r => { get_part(&mut r)? });

codec!(SignedConsensusMsg<Ctx>, w, m => {
    match m {
        SignedConsensusMsg::Vote(v) => { w.u8(1); put_signed_vote(&mut w, v); }
        SignedConsensusMsg::Proposal(p) => {
            w.u8(2);
            put_proposal(&mut w, &p.message);
            put_sig(&mut w, &p.signature);
        }
    }
}, r => {
    match r.u8("msg.tag")? {
        1 => SignedConsensusMsg::Vote(get_signed_vote(&mut r)?),
        2 => {
            let p = get_proposal(&mut r)?;
            SignedConsensusMsg::Proposal(SignedMessage::new(p, get_sig(&mut r)?))
        }
        _ => return Err(bad("consensus message tag")),
    }
});

codec!(LivenessMsg<Ctx>, w, m => {
    match m {
        LivenessMsg::Vote(v) => { w.u8(1); put_signed_vote(&mut w, v); }
        LivenessMsg::PolkaCertificate(c) => { w.u8(2); put_polka(&mut w, c); }
        LivenessMsg::SkipRoundCertificate(c) => { w.u8(3); put_round_cert(&mut w, c); }
    }
}, r => {
    match r.u8("liveness.tag")? {
        1 => LivenessMsg::Vote(get_signed_vote(&mut r)?),
        2 => LivenessMsg::PolkaCertificate(get_polka(&mut r)?),
        3 => LivenessMsg::SkipRoundCertificate(get_round_cert(&mut r)?),
        _ => return Err(bad("liveness message tag")),
    }
});

codec!(StreamMessage<ProposalPart>, w, m => {
    w.short_bytes(&m.stream_id.to_bytes()).u64(m.sequence);
    match &m.content {
        StreamContent::Data(p) => { w.u8(1); put_part(&mut w, p); }
        StreamContent::Fin => { w.u8(2); }
    }
}, r => {
    let stream_id = StreamId::new(Bytes::copy_from_slice(r.short_bytes("stream.id")?));
    let sequence = r.u64("stream.sequence")?;
    let content = match r.u8("stream.tag")? {
        1 => StreamContent::Data(get_part(&mut r)?),
        2 => StreamContent::Fin,
        _ => return Err(bad("stream content tag")),
    };
    StreamMessage::new(stream_id, sequence, content)
});

codec!(ValidatorProof<Ctx>, w, m => {
    w.short_bytes(&m.public_key).short_bytes(&m.peer_id);
    put_sig(&mut w, &m.signature);
}, r => {
    let public_key = r.short_bytes("proof.key")?.to_vec();
    let peer_id = r.short_bytes("proof.peer")?.to_vec();
    ValidatorProof::new(public_key, peer_id, get_sig(&mut r)?)
});

codec!(Status<Ctx>, w, m => {
    put_peer(&mut w, &m.peer_id);
    w.u64(m.tip_height.0).u64(m.history_min_height.0);
}, r => {
    let peer_id = get_peer(&mut r)?;
    let tip_height = Height(r.u64("status.tip")?);
    let history_min_height = Height(r.u64("status.min")?);
    Status { peer_id, tip_height, history_min_height }
});

codec!(Request<Ctx>, w, m => {
    let Request::ValueRequest(v) = m;
    w.u64(v.range.start().0).u64(v.range.end().0);
}, r => {
    let from = r.u64("request.from")?;
    let to = r.u64("request.to")?;
    if from > to {
        return Err(bad("request range"));
    }
    let range: RangeInclusive<Height> = Height(from)..=Height(to);
    Request::ValueRequest(ValueRequest::new(range))
});

codec!(Response<Ctx>, w, m => { put_response(&mut w, m); }, r => {
    let start_height = Height(r.u64("response.start")?);
    let n = count(&mut r, "response.count", MAX_SYNC_VALUES, 8)?;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        let value_bytes = Bytes::copy_from_slice(r.bytes("response.value", MAX_PART_BYTES)?);
        let certificate = get_extended_cert(&mut r)?;
        values.push(RawDecidedValue::new(value_bytes, certificate));
    }
    Response::ValueResponse(ValueResponse::new(start_height, values))
});

fn put_response(w: &mut Writer, m: &Response<Ctx>) {
    let Response::ValueResponse(v) = m;
    w.u64(v.start_height.0).u32(v.values.len() as u32);
    for d in &v.values {
        w.u32(d.value_bytes.len() as u32).raw(&d.value_bytes);
        put_extended_cert(w, &d.certificate);
    }
}

impl HasEncodedLen<Response<Ctx>> for WireCodec {
    fn encoded_len(&self, m: &Response<Ctx>) -> Result<usize, CodecError> {
        let Response::ValueResponse(v) = m;
        Ok(1 + 12
            + v.values
                .iter()
                .map(|d| {
                    4 + d.value_bytes.len()
                        + 8
                        + 8
                        + 32
                        + 4
                        + d.certificate
                            .commit_signatures
                            .iter()
                            .map(|s| {
                                97 + s.extension.as_ref().map_or(0, |e| 4 + e.message.len() + 64)
                            })
                            .sum::<usize>()
                })
                .sum::<usize>())
    }
}

codec!(ProposedValue<Ctx>, w, m => {
    w.u64(m.height.0);
    put_round(&mut w, m.round);
    put_round(&mut w, m.valid_round);
    put_addr(&mut w, &m.proposer);
    w.raw(&m.value.0);
    w.u8(u8::from(m.validity.is_valid()));
}, r => {
    let height = Height(r.u64("proposed.height")?);
    let round = get_round(&mut r)?;
    let valid_round = get_round(&mut r)?;
    let proposer = get_addr(&mut r)?;
    let value = Value(r.array("proposed.value")?);
    let validity = match r.u8("proposed.validity")? {
        0 => Validity::Invalid,
        1 => Validity::Valid,
        _ => return Err(bad("validity")),
    };
    ProposedValue { height, round, valid_round, proposer, value, validity }
});

codec!(PolkaCertificate<Ctx>, w, m => { put_polka(&mut w, m); }, r => { get_polka(&mut r)? });

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip<T>(v: T)
    where
        WireCodec: Codec<T>,
        T: PartialEq + std::fmt::Debug,
    {
        let bytes = WireCodec.encode(&v).unwrap();
        let back: T = WireCodec.decode(bytes.clone()).unwrap();
        assert_eq!(back, v);
        // Every truncation and every single-byte change either fails cleanly or decodes.
        for cut in 0..bytes.len() {
            let _ = <WireCodec as Codec<T>>::decode(&WireCodec, bytes.slice(..cut));
        }
        for i in 0..bytes.len() {
            let mut b = bytes.to_vec();
            b[i] ^= 0x5a;
            let _ = <WireCodec as Codec<T>>::decode(&WireCodec, Bytes::from(b));
        }
    }

    fn addr(i: u8) -> Address {
        Address(PublicKey([i; 32]))
    }

    #[test]
    fn messages_round_trip_and_bad_bytes_never_panic() {
        let vote = Vote {
            height: Height(7),
            round: Round::new(2),
            value: NilOrVal::Val(ValueId([9; 32])),
            vote_type: VoteType::Precommit,
            validator: addr(1),
        };
        let sig = Signature::from_bytes([3; 64]);
        roundtrip(SignedConsensusMsg::<Ctx>::Vote(SignedMessage::new(vote.clone(), sig)));
        let proposal = Proposal {
            height: Height(7),
            round: Round::new(0),
            value: Value([4; 32]),
            pol_round: Round::Nil,
            proposer: addr(2),
        };
        roundtrip(SignedConsensusMsg::<Ctx>::Proposal(SignedMessage::new(proposal, sig)));
        let polka = PolkaCertificate::<Ctx> {
            height: Height(3),
            round: Round::new(1),
            value_id: ValueId([5; 32]),
            polka_signatures: vec![PolkaSignature { address: addr(1), signature: sig }],
        };
        roundtrip(polka.clone());
        roundtrip(LivenessMsg::<Ctx>::PolkaCertificate(polka));
        roundtrip(LivenessMsg::<Ctx>::Vote(SignedMessage::new(vote, sig)));
        roundtrip(LivenessMsg::<Ctx>::SkipRoundCertificate(RoundCertificate {
            height: Height(3),
            round: Round::new(4),
            cert_type: RoundCertificateType::Skip,
            round_signatures: vec![RoundSignature {
                vote_type: VoteType::Prevote,
                value_id: NilOrVal::Nil,
                address: addr(3),
                signature: sig,
            }],
        }));
        let part = ProposalPart {
            height: Height(9),
            round: Round::new(0),
            proposer: addr(1),
            block: Bytes::from_static(b"block bytes"),
        };
        roundtrip(StreamMessage::new(
            StreamId::new(Bytes::from_static(b"id")),
            0,
            StreamContent::Data(part.clone()),
        ));
        roundtrip(StreamMessage::<ProposalPart>::new(
            StreamId::new(Bytes::from_static(b"id")),
            1,
            StreamContent::Fin,
        ));
        roundtrip(part);
        roundtrip(ProposedValue::<Ctx> {
            height: Height(2),
            round: Round::new(0),
            valid_round: Round::Nil,
            proposer: addr(1),
            value: Value([1; 32]),
            validity: Validity::Valid,
        });
        roundtrip(Request::<Ctx>::ValueRequest(ValueRequest::new(Height(1)..=Height(5))));
        let cert = ExtendedCommitCertificate::<Ctx> {
            height: Height(1),
            round: Round::new(0),
            value_id: ValueId([8; 32]),
            commit_signatures: vec![ExtendedCommitSignature {
                address: addr(1),
                signature: sig,
                extension: None,
            }],
        };
        let response = Response::<Ctx>::ValueResponse(ValueResponse::new(
            Height(1),
            vec![RawDecidedValue::new(Bytes::from_static(b"a block"), cert)],
        ));
        assert_eq!(
            WireCodec.encoded_len(&response).unwrap(),
            WireCodec.encode(&response).unwrap().len()
        );
        roundtrip(response);
        roundtrip(Status::<Ctx> {
            peer_id: PeerId::from_bytes(&libp2p::PeerId::random().to_bytes()).unwrap(),
            tip_height: Height(10),
            history_min_height: Height(1),
        });
        roundtrip(ValidatorProof::<Ctx>::new(vec![1; 32], vec![2; 38], sig));
    }

    #[test]
    fn huge_counts_are_refused_before_allocating() {
        let mut w = start();
        w.u64(1).u64(0).raw(&[0; 32]).u32(u32::MAX);
        let e = <WireCodec as Codec<PolkaCertificate<Ctx>>>::decode(&WireCodec, w.finish().into())
            .unwrap_err();
        assert!(e.to_string().contains("do not fit"), "{e}");
    }
}
