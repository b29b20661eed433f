//! One block's auction on a generated book, once, for counting its work with a tool that needs a
//! single run rather than criterion's many: the same orders as the `auction` bench (100 markets,
//! made-up signatures), built before the measured call.
//!
//! `cargo run --release -p surplus-market --example clear_once -- fresh|deep [N]`
//!
//! - `fresh`: a block of N orders (default 100,000) into an empty book;
//! - `deep`: a block of N/10 new orders against a book holding N resting ones.
//!
//! The measured call is `measured`; the instructions it executes, counted by valgrind (a count
//! that does not move with the host's load, where times on a shared machine do):
//!
//! `valgrind --tool=callgrind --toggle-collect='*clear_once::measured*' \
//!     target/release/examples/clear_once deep`

#[path = "../benches/orders/mod.rs"]
mod orders;

use std::hint::black_box;

use orders::{batch, catalogue, resting_book, unlimited, Gen, Prices, BLOCK_MS, NOW};
use surplus_market::{Batch, Book, Catalogue, Outcome};

#[inline(never)]
fn measured(book: &mut Book, catalogue: &Catalogue, input: Batch) -> Outcome {
    book.clear_owned(catalogue, input, &unlimited).expect("block times go forward")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: clear_once fresh|deep [N]";
    let case = args.get(1).map(String::as_str);
    let n: usize = match args.get(2).map(|a| a.parse()) {
        None => 100_000,
        Some(Ok(n)) if n >= 10 => n,
        Some(_) => {
            eprintln!("{usage} (N: a whole number, at least 10)");
            std::process::exit(2);
        }
    };
    let catalogue = catalogue();
    let (mut book, input) = match case {
        Some("fresh") => {
            (Book::new(), batch(1, NOW, Gen::new(&catalogue, 1).orders(n, Prices::Crossing, NOW)))
        }
        Some("deep") => {
            let (book, _) = resting_book(&catalogue, n, 2);
            let now = NOW + BLOCK_MS;
            (book, batch(2, now, Gen::new(&catalogue, 3).orders(n / 10, Prices::Crossing, now)))
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let orders = input.orders.len();
    let out = measured(&mut book, &catalogue, input);
    println!(
        "{orders} new orders: {} fills, {} of {} markets traded, {} resting after",
        out.fills.len(),
        out.prices.len(),
        catalogue.markets().len(),
        book.len()
    );
    black_box((book, out));
}
