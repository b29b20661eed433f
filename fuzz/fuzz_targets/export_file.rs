//! Exported ledger files, as `surplus audit --file` reads them: the header, every block record
//! and the footer, then the audit itself over what was read (up to a few blocks).
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use surplus_store::export::Reader;
use surplus_ledger::{verify, BlockSource, NoHook, Options};

fuzz_target!(|data: &[u8]| {
    let mut file = tempfile::NamedTempFile::new().expect("a temp file");
    file.write_all(data).expect("write the input");
    let Ok(mut reader) = Reader::open(file.path()) else { return };
    let _ = reader.len_hint();
    let _ = verify(&mut reader, &Options::default(), &mut NoHook, &mut |_| {});
    // Whatever the audit left unread is read to the end too.
    for _ in 0..10_000 {
        match reader.next_block() {
            Some(Ok(_)) => {}
            _ => break,
        }
    }
});
