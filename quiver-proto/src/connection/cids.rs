//! Connection IDs (RFC 9000 §5.1): those we issued and those the peer
//! issued to us, with NEW_CONNECTION_ID and RETIRE_CONNECTION_ID.

use std::collections::{BTreeMap, VecDeque};

use crate::frame::NewConnectionId;
use crate::{ConnectionId, TransportError, VarInt};

/// How many of our connection IDs we keep issued at most, whatever the
/// peer's active_connection_id_limit (RFC 9000 §5.1.1).
const MAX_ISSUED: u64 = 8;
/// Retirements we owe but the peer has not acknowledged, before we call it
/// abuse (RFC 9000 §5.1.2: "SHOULD limit the number of connection IDs it
/// has retired locally for which RETIRE_CONNECTION_ID frames have not yet
/// been acknowledged").
const MAX_PENDING_RETIREMENTS: usize = 32;

/// A connection ID issued by one side, with its stateless reset token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IssuedCid {
    pub(crate) cid: ConnectionId,
    pub(crate) reset_token: Option<[u8; 16]>,
}

/// A change in the peer reset tokens the endpoint should check, for its
/// table of tokens (see `endpoint::reset_tokens`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenChange {
    /// A connection ID of the peer's is now in use: check its token.
    Check([u8; 16]),
    /// That connection ID was retired: stop checking its token.
    Stop([u8; 16]),
}

/// Connection IDs of both sides.
///
/// Stateless reset tokens (RFC 9000 §10.3.1) are checked only for the
/// peer's IDs "in use": an ID counts as used from the moment it becomes the
/// Destination Connection ID of our packets ([`CidState::remote_cid`]),
/// and stops when it is retired (§10.3.1: "An endpoint MUST NOT check for
/// any stateless reset tokens associated with connection IDs it has not
/// used or for connection IDs that have been retired"). Spare IDs the peer
/// issued but we have not switched to are not checked. Changes of the
/// active ID and dropped IDs are caught up with in `poll_token_change`
/// whatever made them (`mark_used` and `forget` report them at once).
#[derive(Debug)]
pub(crate) struct CidState {
    /// Ours, by sequence number, not yet retired by the peer.
    local: BTreeMap<u64, IssuedCid>,
    next_local_seq: u64,
    /// Our IDs below this sequence number are to be retired by the peer
    /// (the Retire Prior To we send, RFC 9000 §5.1.2).
    local_retire_prior_to: u64,
    /// Issued but not yet announced (NEW_CONNECTION_ID to send).
    pub(crate) pending_new: Vec<u64>,
    /// The peer's, by sequence number, not retired by us.
    remote: BTreeMap<u64, IssuedCid>,
    active_remote: u64,
    remote_retire_prior_to: u64,
    /// RETIRE_CONNECTION_ID frames to send.
    pub(crate) pending_retire: Vec<u64>,
    /// The peer's IDs in use (sequence, reset token) whose tokens are
    /// checked: at most the IDs we hold, so active_connection_id_limit.
    checked: Vec<(u64, [u8; 16])>,
    /// Changes of `checked` for the endpoint's token table.
    token_changes: VecDeque<TokenChange>,
}

impl CidState {
    pub(crate) fn new(
        local: ConnectionId,
        local_reset_token: [u8; 16],
        remote: ConnectionId,
    ) -> Self {
        let mut s = Self {
            local: BTreeMap::new(),
            next_local_seq: 1,
            local_retire_prior_to: 0,
            pending_new: Vec::new(),
            remote: BTreeMap::new(),
            active_remote: 0,
            remote_retire_prior_to: 0,
            pending_retire: Vec::new(),
            checked: Vec::new(),
            token_changes: VecDeque::new(),
        };
        // Sequence 0 is the one in the handshake (RFC 9000 §5.1.1); its
        // reset token, for the server, goes in transport parameters.
        s.local.insert(
            0,
            IssuedCid {
                cid: local,
                reset_token: Some(local_reset_token),
            },
        );
        s.remote.insert(
            0,
            IssuedCid {
                cid: remote,
                reset_token: None,
            },
        );
        s
    }

    /// The Destination Connection ID to put in our packets.
    pub(crate) fn remote_cid(&self) -> ConnectionId {
        self.remote[&self.active_remote].cid
    }

    /// Replaces the peer's handshake connection ID (a client learns the
    /// server's from its first Initial or from a Retry, RFC 9000 §7.2).
    pub(crate) fn set_initial_remote(&mut self, cid: ConnectionId) {
        if let Some(entry) = self.remote.get_mut(&0) {
            entry.cid = cid;
        }
    }

    /// Records the reset token of the peer's sequence-0 ID (from the
    /// server's stateless_reset_token transport parameter).
    pub(crate) fn set_initial_remote_reset_token(&mut self, token: [u8; 16]) {
        if let Some(entry) = self.remote.get_mut(&0) {
            entry.reset_token = Some(token);
        }
        if self.active_remote == 0 {
            self.mark_used(0);
        }
    }

    /// The peer's ID `seq` is the one our packets go to: its token, if it
    /// has one, is checked from now on (RFC 9000 §10.3.1).
    fn mark_used(&mut self, seq: u64) {
        let Some(token) = self.remote.get(&seq).and_then(|c| c.reset_token) else {
            return;
        };
        if self.checked.iter().any(|(s, _)| *s == seq) {
            return;
        }
        self.checked.push((seq, token));
        self.token_changes.push_back(TokenChange::Check(token));
    }

    /// Drops the peer's ID `seq` (retired by us): its token is no longer
    /// checked (RFC 9000 §10.3.1).
    fn forget(&mut self, seq: u64) {
        self.remote.remove(&seq);
        if let Some(i) = self.checked.iter().position(|(s, _)| *s == seq) {
            let (_, token) = self.checked.swap_remove(i);
            self.token_changes.push_back(TokenChange::Stop(token));
        }
    }

    /// The next change of the checked tokens for the endpoint. First
    /// catches up with changes made without `mark_used` or `forget`: the
    /// active ID is used, and IDs no longer held are retired. A few
    /// entries at most (the IDs we hold), so it costs next to nothing.
    pub(crate) fn poll_token_change(&mut self) -> Option<TokenChange> {
        let mut i = 0;
        while i < self.checked.len() {
            let (seq, token) = self.checked[i];
            if self.remote.get(&seq).and_then(|c| c.reset_token) == Some(token) {
                i += 1;
            } else {
                self.checked.swap_remove(i);
                self.token_changes.push_back(TokenChange::Stop(token));
            }
        }
        self.mark_used(self.active_remote);
        self.token_changes.pop_front()
    }

    /// Our handshake connection ID.
    pub(crate) fn initial_local(&self) -> Option<ConnectionId> {
        self.local.get(&0).map(|c| c.cid)
    }

    /// The peer's reset tokens to check: those of its IDs in use and not
    /// retired (RFC 9000 §10.3.1).
    pub(crate) fn remote_reset_tokens(&self) -> impl Iterator<Item = [u8; 16]> + '_ {
        self.checked.iter().map(|(_, t)| *t)
    }

    /// How many more IDs the endpoint should issue to us, given the peer's
    /// active_connection_id_limit.
    pub(crate) fn wanted(&self, peer_limit: u64) -> u64 {
        // IDs being retired do not count: RFC 9000 §5.1.1 lets an endpoint
        // "temporarily exceed a peer's limit if the NEW_CONNECTION_ID frame
        // also requires the retirement of any excess".
        let live = self.local.range(self.local_retire_prior_to..).count() as u64;
        peer_limit.min(MAX_ISSUED).saturating_sub(live)
    }

    /// Asks the peer to stop using every ID of ours issued so far (RFC
    /// 9000 §5.1.2, Retire Prior To) in favour of fresh ones, which the
    /// endpoint issues next. Used after the peer's address changed under
    /// an unchanged ID (a NAT rebinding): the ID seen on both paths stops
    /// linking them from then on (§9.5).
    pub(crate) fn rotate_local(&mut self) {
        self.local_retire_prior_to = self.next_local_seq;
    }

    /// Registers a new local ID; it will be announced with
    /// NEW_CONNECTION_ID.
    pub(crate) fn issue(&mut self, cid: ConnectionId, reset_token: [u8; 16]) {
        let seq = self.next_local_seq;
        self.next_local_seq += 1;
        self.local.insert(
            seq,
            IssuedCid {
                cid,
                reset_token: Some(reset_token),
            },
        );
        self.pending_new.push(seq);
    }

    /// Registers the server's preferred-address ID, which is sequence
    /// number 1 (RFC 9000 §5.1.1) and announced in the transport
    /// parameter, not with NEW_CONNECTION_ID.
    pub(crate) fn issue_preferred(&mut self, cid: ConnectionId, reset_token: [u8; 16]) {
        debug_assert_eq!(self.next_local_seq, 1, "issued before any other");
        let seq = self.next_local_seq;
        self.next_local_seq += 1;
        self.local.insert(
            seq,
            IssuedCid {
                cid,
                reset_token: Some(reset_token),
            },
        );
    }

    /// Moves to the peer's ID `cid` (one it gave us) and retires the one in
    /// use. Returns false when `cid` is not among the peer's IDs.
    pub(crate) fn switch_remote_to(&mut self, cid: &ConnectionId) -> bool {
        let Some((&seq, _)) = self.remote.iter().find(|(_, c)| c.cid == *cid) else {
            return false;
        };
        if seq != self.active_remote {
            let old = self.active_remote;
            self.active_remote = seq;
            self.remote.remove(&old);
            self.pending_retire.push(old);
        }
        true
    }

    /// The NEW_CONNECTION_ID frame for our ID `seq`, if still issued.
    pub(crate) fn new_cid_frame(&self, seq: u64) -> Option<NewConnectionId> {
        // An ID being retired is not announced again (and its frame would
        // carry a Retire Prior To above its own sequence number, which
        // §19.15 makes a FRAME_ENCODING_ERROR).
        if seq < self.local_retire_prior_to {
            return None;
        }
        let c = self.local.get(&seq)?;
        Some(NewConnectionId {
            sequence: VarInt::from_u64_unchecked(seq),
            retire_prior_to: VarInt::from_u64_unchecked(self.local_retire_prior_to),
            id: c.cid,
            reset_token: c.reset_token.unwrap_or_default(),
        })
    }

    /// The peer retired our ID `seq` (RFC 9000 §19.16). Returns the retired
    /// ID so the endpoint stops routing it.
    pub(crate) fn on_retire(
        &mut self,
        seq: u64,
        packet_dst_cid: &ConnectionId,
    ) -> Result<Option<ConnectionId>, TransportError> {
        // §19.16: "Receipt of a RETIRE_CONNECTION_ID frame containing a
        // sequence number greater than any previously sent to the peer MUST
        // be treated as a connection error of type PROTOCOL_VIOLATION."
        if seq >= self.next_local_seq {
            return Err(
                TransportError::protocol_violation("retired a connection ID never issued")
                    .with_frame(0x19),
            );
        }
        let Some(entry) = self.local.get(&seq) else {
            return Ok(None);
        };
        // §19.16: "The sequence number specified in a RETIRE_CONNECTION_ID
        // frame MUST NOT refer to the Destination Connection ID field of the
        // packet in which the frame is contained."
        if entry.cid == *packet_dst_cid {
            return Err(TransportError::protocol_violation(
                "retired the connection ID the packet was sent to",
            )
            .with_frame(0x19));
        }
        let cid = entry.cid;
        self.local.remove(&seq);
        self.pending_new.retain(|s| *s != seq);
        Ok(Some(cid))
    }

    /// The peer issued us an ID (RFC 9000 §19.15, §5.1.2).
    pub(crate) fn on_new_cid(
        &mut self,
        frame: &NewConnectionId,
        active_limit: u64,
    ) -> Result<(), TransportError> {
        let err = |reason| TransportError::protocol_violation(reason).with_frame(0x18);
        // §19.15: "An endpoint that is sending packets with a zero-length
        // Destination Connection ID MUST treat receipt of a
        // NEW_CONNECTION_ID frame as a connection error of type
        // PROTOCOL_VIOLATION."
        if self.remote_cid().is_empty() {
            return Err(err("NEW_CONNECTION_ID while using a zero-length CID"));
        }
        let seq = frame.sequence.into_inner();
        let retire_prior_to = frame.retire_prior_to.into_inner();
        if let Some(existing) = self.remote.get(&seq) {
            // §19.15: the same sequence number with a different ID or token
            // is a PROTOCOL_VIOLATION; a repeat is fine.
            if existing.cid != frame.id || existing.reset_token != Some(frame.reset_token) {
                return Err(err("sequence number reused for another connection ID"));
            }
            return Ok(());
        }
        if self.remote.values().any(|c| c.cid == frame.id) {
            return Err(err("connection ID issued twice"));
        }
        if seq < self.remote_retire_prior_to {
            // §19.15: "MUST immediately send a corresponding
            // RETIRE_CONNECTION_ID frame".
            self.queue_retire(seq)?;
            return Ok(());
        }
        self.remote.insert(
            seq,
            IssuedCid {
                cid: frame.id,
                reset_token: Some(frame.reset_token),
            },
        );
        if retire_prior_to > self.remote_retire_prior_to {
            self.remote_retire_prior_to = retire_prior_to;
            let retired: Vec<u64> = self
                .remote
                .range(..retire_prior_to)
                .map(|(s, _)| *s)
                .collect();
            // Refused before anything changes: failing halfway would leave
            // the active ID retired and `remote_cid` without an entry (a
            // panic when the close is addressed).
            if self.pending_retire.len() + retired.len() > MAX_PENDING_RETIREMENTS {
                return Err(TransportError::connection_id_limit_error(
                    "too many connection IDs retired at once",
                )
                .with_frame(0x18));
            }
            for s in retired {
                self.forget(s);
                self.queue_retire(s)?;
            }
            if !self.remote.contains_key(&self.active_remote) {
                match self.remote.keys().next() {
                    Some(&next) => {
                        self.active_remote = next;
                        self.mark_used(next);
                    }
                    None => return Err(err("every connection ID retired")),
                }
            }
        }
        // The client's handshake connection ID comes without a stateless
        // reset token (only servers send stateless_reset_token, §18.2), so a
        // server using it could never recognise a reset (§10.3.1). Move to
        // the first ID that has one, which §5.1.2 allows at any time.
        if self.remote[&self.active_remote].reset_token.is_none() && seq != self.active_remote {
            let old = self.active_remote;
            self.active_remote = seq;
            self.mark_used(seq);
            self.forget(old);
            self.queue_retire(old)?;
        }
        // §5.1.1: more than active_connection_id_limit active IDs is a
        // CONNECTION_ID_LIMIT_ERROR.
        if self.remote.len() as u64 > active_limit {
            return Err(TransportError::connection_id_limit_error(
                "more connection IDs than active_connection_id_limit",
            )
            .with_frame(0x18));
        }
        Ok(())
    }

    /// Moves to the peer's next unused connection ID and retires the one
    /// in use (RFC 9000 §9.5: a new path uses a connection ID not used on
    /// any other). Returns false, changing nothing, when the peer has
    /// given us no spare ID.
    /// The peer's next connection ID after the active one, not in use:
    /// for a path from another local address of ours (RFC 9000 §9.5).
    pub(crate) fn spare_remote(&self) -> Option<ConnectionId> {
        self.remote
            .range(self.active_remote + 1..)
            .next()
            .map(|(_, c)| c.cid)
    }

    pub(crate) fn rotate_remote(&mut self) -> bool {
        let Some((&next, _)) = self.remote.range(self.active_remote + 1..).next() else {
            return false;
        };
        let old = self.active_remote;
        self.active_remote = next;
        self.remote.remove(&old);
        // Not counted against MAX_PENDING_RETIREMENTS: each rotation
        // consumes an ID the peer issued within our limit.
        self.pending_retire.push(old);
        true
    }

    fn queue_retire(&mut self, seq: u64) -> Result<(), TransportError> {
        if self.pending_retire.len() >= MAX_PENDING_RETIREMENTS {
            return Err(TransportError::connection_id_limit_error(
                "too many connection IDs retired at once",
            ));
        }
        self.pending_retire.push(seq);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TransportErrorCode;

    fn cid(b: u8) -> ConnectionId {
        ConnectionId::new(&[b; 8]).unwrap()
    }

    fn new_cid(seq: u64, retire_prior_to: u64, b: u8) -> NewConnectionId {
        NewConnectionId {
            sequence: VarInt::from_u64_unchecked(seq),
            retire_prior_to: VarInt::from_u64_unchecked(retire_prior_to),
            id: cid(b),
            reset_token: [b; 16],
        }
    }

    fn state() -> CidState {
        let mut s = CidState::new(cid(1), [1; 16], cid(2));
        s.set_initial_remote_reset_token([2; 16]);
        s
    }

    /// RFC 9000 §5.1.1: more than active_connection_id_limit IDs is a
    /// CONNECTION_ID_LIMIT_ERROR.
    #[test]
    fn too_many_connection_ids_is_connection_id_limit_error() {
        let mut s = state();
        s.on_new_cid(&new_cid(1, 0, 3), 2).unwrap();
        let err = s.on_new_cid(&new_cid(2, 0, 4), 2).unwrap_err();
        assert_eq!(err.code, TransportErrorCode::CONNECTION_ID_LIMIT_ERROR);
    }

    /// §19.15: retire_prior_to retires older IDs; the active one moves on.
    #[test]
    fn retire_prior_to_retires_and_switches_active() {
        let mut s = state();
        s.on_new_cid(&new_cid(1, 1, 3), 2).unwrap();
        assert_eq!(s.remote_cid(), cid(3));
        assert_eq!(s.pending_retire, vec![0]);
        // An ID already below retire_prior_to is retired at once.
        s.on_new_cid(&new_cid(5, 4, 5), 4).unwrap();
        s.on_new_cid(&new_cid(3, 0, 6), 4).unwrap();
        assert!(s.pending_retire.contains(&3));
    }

    /// §19.15: the same sequence number for another ID is a
    /// PROTOCOL_VIOLATION; a repeat is harmless.
    #[test]
    fn reused_sequence_number_is_protocol_violation() {
        let mut s = state();
        s.on_new_cid(&new_cid(1, 0, 3), 4).unwrap();
        s.on_new_cid(&new_cid(1, 0, 3), 4).unwrap();
        let err = s.on_new_cid(&new_cid(1, 0, 9), 4).unwrap_err();
        assert_eq!(err.code, TransportErrorCode::PROTOCOL_VIOLATION);
    }

    /// §19.16: retiring an ID never issued, or the one the packet was sent
    /// to, is a PROTOCOL_VIOLATION.
    #[test]
    fn retiring_unissued_or_current_id_is_protocol_violation() {
        let mut s = state();
        s.issue(cid(7), [7; 16]);
        assert_eq!(
            s.on_retire(5, &cid(1)).unwrap_err().code,
            TransportErrorCode::PROTOCOL_VIOLATION
        );
        assert_eq!(
            s.on_retire(1, &cid(7)).unwrap_err().code,
            TransportErrorCode::PROTOCOL_VIOLATION
        );
        assert_eq!(s.on_retire(1, &cid(1)).unwrap(), Some(cid(7)));
        assert_eq!(s.on_retire(1, &cid(1)).unwrap(), None);
    }

    /// An active ID changed, or an ID dropped, without `mark_used` or
    /// `forget` is still caught up with.
    #[test]
    fn token_changes_follow_any_switch_of_the_active_id() {
        let mut s = state();
        s.on_new_cid(&new_cid(1, 0, 3), 4).unwrap();
        while s.poll_token_change().is_some() {}
        // A switch the way other code may make one.
        s.active_remote = 1;
        s.remote.remove(&0);
        assert_eq!(s.poll_token_change(), Some(TokenChange::Stop([2; 16])));
        assert_eq!(s.poll_token_change(), Some(TokenChange::Check([3; 16])));
        assert_eq!(s.poll_token_change(), None);
        assert_eq!(s.remote_reset_tokens().collect::<Vec<_>>(), vec![[3; 16]]);
    }

    /// Retirements beyond what may be owed at once are a
    /// CONNECTION_ID_LIMIT_ERROR (RFC 9000 §5.1.2), and the ID in use stays
    /// valid for the close.
    #[test]
    fn too_many_retirements_at_once_keep_the_active_id() {
        let mut s = state();
        let mut err = None;
        for seq in 1..100 {
            if let Err(e) = s.on_new_cid(&new_cid(seq, seq, seq as u8), 4) {
                err = Some(e);
                break;
            }
        }
        let err = err.expect("limit reached");
        assert_eq!(err.code, TransportErrorCode::CONNECTION_ID_LIMIT_ERROR);
        let _ = s.remote_cid();
    }

    /// The handshake ID of a client has no reset token: the server moves to
    /// the first issued ID that has one and retires the old one.
    #[test]
    fn tokenless_handshake_id_is_replaced_by_first_issued() {
        let mut s = CidState::new(cid(1), [1; 16], cid(2));
        s.on_new_cid(&new_cid(1, 0, 3), 4).unwrap();
        assert_eq!(s.remote_cid(), cid(3));
        assert_eq!(s.pending_retire, vec![0]);
        assert_eq!(s.remote_reset_tokens().collect::<Vec<_>>(), vec![[3; 16]]);
        assert_eq!(s.poll_token_change(), Some(TokenChange::Check([3; 16])));
        assert_eq!(s.poll_token_change(), None);
    }

    /// RFC 9000 §10.3.1: "An endpoint MUST NOT check for any stateless
    /// reset tokens associated with connection IDs it has not used or for
    /// connection IDs that have been retired."
    #[test]
    fn only_tokens_of_used_unretired_ids_are_checked() {
        let mut s = state();
        assert_eq!(s.poll_token_change(), Some(TokenChange::Check([2; 16])));
        // A spare ID is not used yet: its token is not checked.
        s.on_new_cid(&new_cid(1, 0, 3), 4).unwrap();
        assert_eq!(s.poll_token_change(), None);
        assert_eq!(s.remote_reset_tokens().collect::<Vec<_>>(), vec![[2; 16]]);
        // Retiring the ID in use moves to the spare one.
        s.on_new_cid(&new_cid(2, 1, 4), 4).unwrap();
        assert_eq!(s.remote_cid(), cid(3));
        assert_eq!(s.poll_token_change(), Some(TokenChange::Stop([2; 16])));
        assert_eq!(s.poll_token_change(), Some(TokenChange::Check([3; 16])));
        assert_eq!(s.poll_token_change(), None);
        assert_eq!(s.remote_reset_tokens().collect::<Vec<_>>(), vec![[3; 16]]);
    }
}
