//! The data of a message on the orders topic: several entries together (`docs/network.md`,
//! "Topics"; decision 0036).
//!
//! `count:u16 ‖ (len:u32 ‖ entry)×count`, integers big-endian, each `entry` an
//! `Entry::encode()` of exactly `len` bytes; `count` is 1 to [`MAX_ENTRIES`] and nothing follows
//! the last entry.

use surplus_ledger::encoding::{Reader, Writer};
use surplus_ledger::Entry;

/// Most entries in one message. A peer's rate limit counts messages, so this bounds the entries
/// a peer can hand the validator per token.
pub const MAX_ENTRIES: usize = 64;

/// Bytes a message adds to its entries: the count, then a length before each.
pub const fn framing(count: usize) -> usize {
    2 + 4 * count
}

/// The message data carrying `entries` (encoded), in order. The caller keeps to
/// [`MAX_ENTRIES`] and to the message size limit ([`Packer`] does both).
pub fn pack<B: AsRef<[u8]>>(entries: &[B]) -> Vec<u8> {
    let body: usize = entries.iter().map(|e| e.as_ref().len()).sum();
    let mut w = Writer::with_capacity(framing(entries.len()) + body);
    w.u16(u16::try_from(entries.len()).unwrap_or(u16::MAX));
    for e in entries {
        w.bytes(e.as_ref());
    }
    w.finish()
}

/// The entries of a message's data, in order; an error names what is wrong with the framing or
/// with the first entry that does not decode.
pub fn unpack(data: &[u8]) -> Result<Vec<Entry>, String> {
    let mut r = Reader::new(data);
    let count = r.u16("batch.count").map_err(|e| e.to_string())? as usize;
    if count == 0 || count > MAX_ENTRIES {
        return Err(format!("a message carries 1 to {MAX_ENTRIES} entries, not {count}"));
    }
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let bytes = r.bytes("batch.entry", data.len()).map_err(|e| e.to_string())?;
        entries.push(Entry::decode(bytes).map_err(|e| format!("entry {i}: {e}"))?);
    }
    r.finish().map_err(|e| e.to_string())?;
    Ok(entries)
}

/// A message's data with the tags of the entries it carries, in order.
pub type Message<T> = (Vec<T>, Vec<u8>);

/// Groups encoded entries into messages of at most [`MAX_ENTRIES`] entries and `max_bytes`
/// bytes of data each, in the order given. An entry too large for a message of its own is
/// left out and returned apart (the node refuses such entries on admission, so none comes).
pub fn group<T>(items: Vec<(T, Vec<u8>)>, max_bytes: usize) -> (Vec<Message<T>>, Vec<T>) {
    let mut messages = Vec::new();
    let mut too_large = Vec::new();
    let (mut tags, mut bodies): (Vec<T>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
    let mut size = framing(0);
    for (tag, body) in items {
        if framing(1) + body.len() > max_bytes {
            too_large.push(tag);
            continue;
        }
        if !bodies.is_empty() && (bodies.len() == MAX_ENTRIES || size + 4 + body.len() > max_bytes)
        {
            messages.push((std::mem::take(&mut tags), pack(&bodies)));
            bodies.clear();
            size = framing(0);
        }
        size += 4 + body.len();
        tags.push(tag);
        bodies.push(body);
    }
    if !bodies.is_empty() {
        messages.push((tags, pack(&bodies)));
    }
    (messages, too_large)
}

#[cfg(test)]
mod tests {
    use super::*;
    use surplus_ledger::{EntryKind, SecretKey};

    fn entry(i: u8, len: usize) -> Entry {
        Entry::signed("c", EntryKind::ORDER, vec![i; len], &SecretKey::from_seed([i; 32]))
    }

    #[test]
    fn round_trip_and_framing() {
        let entries = [entry(1, 10), entry(2, 300)];
        let data = pack(&entries.iter().map(Entry::encode).collect::<Vec<_>>());
        assert_eq!(&data[..2], &[0, 2]);
        let len = u32::from_be_bytes(data[2..6].try_into().unwrap()) as usize;
        assert_eq!(&data[6..6 + len], &entries[0].encode()[..]);
        assert_eq!(
            data.len(),
            framing(2) + entries.iter().map(|e| e.encode().len()).sum::<usize>()
        );
        assert_eq!(unpack(&data).unwrap(), entries.to_vec());
    }

    #[test]
    fn bad_framing_is_refused() {
        let one = pack(&[entry(1, 10).encode()]);
        assert!(unpack(&[]).is_err());
        assert!(unpack(&[0, 0]).unwrap_err().contains("1 to 64"));
        let mut many = vec![0, 65];
        many.extend_from_slice(&one[2..]);
        assert!(unpack(&many).unwrap_err().contains("not 65"));
        let mut trailing = one.clone();
        trailing.push(0);
        assert!(unpack(&trailing).is_err());
        assert!(unpack(&one[..one.len() - 1]).is_err());
        // A length that runs past the data, and an entry that does not decode.
        let mut long = one.clone();
        long[5] += 1;
        assert!(unpack(&long).is_err());
        let mut bad = pack(&[vec![0xff; 3]]);
        assert!(unpack(&bad).unwrap_err().starts_with("entry 0"));
        bad[1] = 2;
        assert!(unpack(&bad).is_err());
    }

    #[test]
    fn group_keeps_order_and_limits() {
        let items: Vec<(usize, Vec<u8>)> =
            (0..200).map(|i| (i, entry((i % 250) as u8, 100 + i).encode())).collect();
        let max = 8 * 1024;
        let (messages, too_large) = group(items.clone(), max);
        assert!(too_large.is_empty());
        let mut seen = Vec::new();
        for (tags, data) in &messages {
            assert!(
                data.len() <= max && tags.len() <= MAX_ENTRIES,
                "{} {}",
                data.len(),
                tags.len()
            );
            let entries = unpack(data).unwrap();
            for (t, e) in tags.iter().zip(&entries) {
                assert_eq!(e.encode(), items[*t].1);
            }
            seen.extend(tags.iter().copied());
        }
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
        // Count alone splits small entries.
        let small: Vec<(usize, Vec<u8>)> = (0..130).map(|i| (i, entry(1, 1).encode())).collect();
        let (messages, _) = group(small, 1 << 20);
        assert_eq!(messages.iter().map(|m| m.0.len()).collect::<Vec<_>>(), [64, 64, 2]);
        // An entry larger than a message is set apart.
        let (messages, too_large) = group(vec![(7, vec![0; 100]), (8, vec![0; 10])], 50);
        assert_eq!(too_large, [7]);
        assert_eq!(messages.len(), 1);
    }
}
