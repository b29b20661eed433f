//! The consensus engine's wire messages (`surplus_net::consensus::codec::WireCodec`): votes and
//! proposals, proposal parts and their streams, liveness messages, validator proofs, sync
//! status, requests and responses, proposed values and polka certificates, as any peer can send
//! them. The first byte picks the type; every decoded message must re-encode and decode to an
//! equal message.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use malachitebft_app_channel::app::consensus::LivenessMsg;
use malachitebft_app_channel::app::types::codec::Codec;
use malachitebft_app_channel::app::types::core::{PolkaCertificate, ValidatorProof};
use malachitebft_app_channel::app::types::streaming::StreamMessage;
use malachitebft_app_channel::app::types::sync::{Request, Response, Status};
use malachitebft_app_channel::app::types::{ProposedValue, SignedConsensusMsg};
use surplus_net::consensus::codec::WireCodec;
use surplus_net::consensus::context::{Ctx, ProposalPart, Value};

/// Decodes `bytes` as `T`; a decoded message must survive encode → decode unchanged.
fn check<T: PartialEq + std::fmt::Debug>(bytes: &[u8])
where
    WireCodec: Codec<T>,
{
    let codec = WireCodec;
    if let Ok(v) = Codec::<T>::decode(&codec, Bytes::copy_from_slice(bytes)) {
        let encoded = Codec::<T>::encode(&codec, &v).expect("a decoded message encodes");
        let again = Codec::<T>::decode(&codec, encoded).expect("its encoding decodes");
        assert_eq!(again, v);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((which, bytes)) = data.split_first() else { return };
    match which % 11 {
        0 => check::<Value>(bytes),
        1 => check::<ProposalPart>(bytes),
        2 => check::<SignedConsensusMsg<Ctx>>(bytes),
        3 => check::<LivenessMsg<Ctx>>(bytes),
        4 => check::<StreamMessage<ProposalPart>>(bytes),
        5 => check::<ValidatorProof<Ctx>>(bytes),
        6 => check::<Status<Ctx>>(bytes),
        7 => check::<Request<Ctx>>(bytes),
        8 => check::<Response<Ctx>>(bytes),
        9 => check::<ProposedValue<Ctx>>(bytes),
        _ => check::<PolkaCertificate<Ctx>>(bytes),
    }
});
