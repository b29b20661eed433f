//! Notices a validator whose proposals no longer reach its peers, so the node can restart its
//! consensus engine and reconnect.
//!
//! Found by the partition test: after a partition healed, the cut-off validator followed the
//! chain (by sync, and by the votes it received) but its own messages went nowhere. Gossipsub
//! sends a node's subscriptions only over the first connection to a peer, and its peers still
//! held their old TCP connections when it reconnected, so it never learnt that they subscribe
//! to the consensus topics (its log says `NoPeersSubscribedToTopic`). The engine itself reports
//! that state (`consensus::Status::cut_off`: peers connected, none in its consensus mesh), and
//! the node then restarts the engine's network under a fresh peer id
//! (`consensus::Running::reconnect`), to which no peer holds an old connection. This watch is
//! the second signal, for whatever else keeps the node's proposals from landing, and it spaces
//! the restarts of both. Since the engine's network sends by broadcast (decision 0041), which
//! has no mesh to ask, it is the only signal (`consensus::reach_is_known`).
//!
//! The signal: proposers rotate (height − 1 + round, modulo the validators, in genesis order).
//! When a block the node sees at once (its timestamp is under [`FRESH_MS`] old) was this node's
//! turn at round 0 but another validator proposed it, this node's proposal did not get through.
//! The watch counts only once [`ARM_AFTER`] fresh blocks in a row show the node in step (not
//! catching up, when the turns were never its to take). After [`MISSED_TURNS`] such turns in a
//! row the node restarts its engine, and then not again for [`QUIET_MS`], doubled after each
//! restart (up to [`QUIET_MAX_MS`]) and reset once it proposes a turn. A restart costs about a
//! second of this node's votes, so a false alarm is cheap.

/// Consecutive missed proposal turns that mean the node is cut off from consensus gossip.
pub const MISSED_TURNS: u32 = 4;
/// No restart within this long of the last one, ms (doubled after each that did not help).
pub const QUIET_MS: u64 = 5 * 1000;
/// The longest quiet period, ms.
pub const QUIET_MAX_MS: u64 = 5 * 60 * 1000;
/// A block younger than this is seen as it is made (not caught up by sync), ms.
pub const FRESH_MS: u64 = 2_000;
/// Fresh blocks in a row before turns count.
pub const ARM_AFTER: u32 = 8;

/// This validator's proposal turns, and how many in a row went to another validator.
#[derive(Debug)]
pub struct TurnWatch {
    me: u64,
    validators: u64,
    in_step: u32,
    missed: u32,
    quiet_until_ms: u64,
    /// The quiet period after the next restart.
    quiet_ms: u64,
}

impl TurnWatch {
    /// A watch for validator `me` (its index in genesis order) of `validators`.
    pub fn new(me: usize, validators: usize) -> Self {
        Self {
            me: me as u64,
            validators: validators.max(1) as u64,
            in_step: 0,
            missed: 0,
            quiet_until_ms: 0,
            quiet_ms: QUIET_MS,
        }
    }

    /// Takes in a committed block: its height, the index of its proposer, and whether it was
    /// seen fresh at `now_ms`. True when the node should restart.
    pub fn observe(
        &mut self,
        height: u64,
        proposer: Option<usize>,
        fresh: bool,
        now_ms: u64,
    ) -> bool {
        if !fresh || height == 0 {
            self.in_step = 0;
            return false;
        }
        if self.in_step < ARM_AFTER {
            self.in_step += 1;
            return false;
        }
        let turn = (height - 1) % self.validators == self.me;
        if !turn {
            return false;
        }
        if proposer == Some(self.me as usize) {
            self.missed = 0;
            self.quiet_ms = QUIET_MS;
            return false;
        }
        self.missed += 1;
        self.missed >= MISSED_TURNS && self.restart(now_ms)
    }

    /// The engine reports that none of its peers takes its consensus messages
    /// (`consensus::Status::cut_off`). True when the node should restart it now, that is not
    /// within the quiet period of the last restart.
    pub fn cut_off(&mut self, now_ms: u64) -> bool {
        self.restart(now_ms)
    }

    fn restart(&mut self, now_ms: u64) -> bool {
        if now_ms < self.quiet_until_ms {
            return false;
        }
        self.missed = 0;
        self.quiet_until_ms = now_ms.saturating_add(self.quiet_ms);
        self.quiet_ms = (self.quiet_ms * 2).min(QUIET_MAX_MS);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fresh blocks of other validators' turns until the watch counts.
    fn arm(w: &mut TurnWatch) {
        for _ in 0..ARM_AFTER {
            assert!(!w.observe(2, Some(1), true, 0));
        }
    }

    /// Heights whose round-0 proposer is validator `me` of 4: 1 + me, 5 + me, ...
    fn turns(me: u64) -> impl Iterator<Item = u64> {
        (0..).map(move |k| 1 + me + 4 * k)
    }

    #[test]
    fn partition_heal_validator_whose_proposals_never_land_restarts_with_a_growing_quiet_period() {
        let mut w = TurnWatch::new(3, 4);
        arm(&mut w);
        let mut t = turns(3);
        // One missed turn short, then another validator's height: no restart yet.
        for _ in 1..MISSED_TURNS {
            assert!(!w.observe(t.next().unwrap(), Some(0), true, 1_000));
        }
        assert!(!w.observe(2, Some(1), true, 1_000));
        // The last missed turn in a row restarts it.
        assert!(w.observe(t.next().unwrap(), Some(0), true, 1_000));
        // Not again within the quiet period, however many turns it misses.
        for _ in 0..20 {
            assert!(!w.observe(t.next().unwrap(), Some(1), true, 2_000));
        }
        assert!(w.observe(t.next().unwrap(), Some(1), true, 1_000 + QUIET_MS));
        // The restart did not help: the next quiet period is twice as long, and so on up to
        // the longest.
        let again = 1_000 + QUIET_MS;
        for _ in 0..MISSED_TURNS {
            assert!(!w.observe(t.next().unwrap(), Some(1), true, again + 2 * QUIET_MS - 1));
        }
        assert!(w.observe(t.next().unwrap(), Some(1), true, again + 2 * QUIET_MS));
        let mut at = again + 2 * QUIET_MS;
        for _ in 0..10 {
            at += QUIET_MAX_MS;
            for _ in 1..MISSED_TURNS {
                assert!(!w.observe(t.next().unwrap(), Some(1), true, at));
            }
            assert!(w.observe(t.next().unwrap(), Some(1), true, at), "at most QUIET_MAX_MS");
        }
        // A turn it proposes shows the connection works: the quiet period starts over.
        assert!(!w.observe(t.next().unwrap(), Some(3), true, at + 1));
        for _ in 1..MISSED_TURNS {
            assert!(!w.observe(t.next().unwrap(), Some(1), true, at + QUIET_MAX_MS));
        }
        assert!(w.observe(t.next().unwrap(), Some(1), true, at + QUIET_MAX_MS));
        for _ in 1..MISSED_TURNS {
            assert!(!w.observe(t.next().unwrap(), Some(1), true, at + QUIET_MAX_MS + QUIET_MS));
        }
        assert!(w.observe(t.next().unwrap(), Some(1), true, at + QUIET_MAX_MS + QUIET_MS));
    }

    #[test]
    fn a_turn_it_proposes_resets_and_caught_up_blocks_do_not_count() {
        let mut w = TurnWatch::new(1, 4);
        arm(&mut w);
        let mut t = turns(1);
        for _ in 1..MISSED_TURNS {
            assert!(!w.observe(t.next().unwrap(), Some(2), true, 0));
        }
        assert!(!w.observe(t.next().unwrap(), Some(1), true, 0));
        for _ in 1..MISSED_TURNS {
            assert!(!w.observe(t.next().unwrap(), Some(2), true, 0));
        }
        // Blocks caught up by sync (not fresh) are not its turns that failed, nor are the first
        // fresh ones after them.
        for _ in 0..50 {
            assert!(!w.observe(t.next().unwrap(), Some(2), false, 0));
        }
        for _ in 0..ARM_AFTER {
            assert!(!w.observe(t.next().unwrap(), Some(2), true, 0));
        }
    }

    #[test]
    fn partition_heal_cut_off_engine_restarts_within_the_same_quiet_period() {
        let mut w = TurnWatch::new(0, 4);
        assert!(w.cut_off(1_000));
        assert!(!w.cut_off(1_000 + QUIET_MS - 1), "not within the quiet period");
        assert!(w.cut_off(1_000 + QUIET_MS));
        assert!(!w.cut_off(1_000 + 3 * QUIET_MS - 1), "the quiet period doubled");
        assert!(w.cut_off(1_000 + 3 * QUIET_MS));
        // Missed turns share the quiet period.
        arm(&mut w);
        let mut t = 100u64..;
        for _ in 0..4 * MISSED_TURNS {
            assert!(!w.observe(t.next().unwrap(), Some(1), true, 1_000 + 3 * QUIET_MS + 1));
        }
    }
}
