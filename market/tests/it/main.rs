//! Integration tests of the market: order encoding and validation, worked auction examples,
//! properties over random books, and a brute-force reference of the price rule.

mod auction;
mod gen;
mod orders;
mod properties;
mod vectors;
