//! The refusal codes of `docs/api.md` are exactly `Code::ALL`: the table there is generated
//! from the code (`SURPLUS_REGEN_DOCS=1` rewrites it; regenerating is a deliberate act).

use surplus_contracts::Code;

const BEGIN: &str = "<!-- refusal-codes:begin (generated from surplus_contracts::Code) -->\n";
const END: &str = "<!-- refusal-codes:end -->";

#[test]
fn docs_api_md_lists_every_refusal_code_with_its_status_and_hint() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md");
    let doc = std::fs::read_to_string(path).expect("docs/api.md");
    let start = doc.find(BEGIN).expect("docs/api.md has the begin marker") + BEGIN.len();
    let end = doc[start..].find(END).expect("docs/api.md has the end marker") + start;
    let table = Code::markdown_table();
    if std::env::var_os("SURPLUS_REGEN_DOCS").is_some() {
        let updated = format!("{}{}{}", &doc[..start], table, &doc[end..]);
        std::fs::write(path, updated).expect("rewrite docs/api.md");
        return;
    }
    assert_eq!(
        &doc[start..end],
        table,
        "docs/api.md's table of refusal codes differs from surplus_contracts::Code; run \
         SURPLUS_REGEN_DOCS=1 cargo test -p surplus-contracts --test it codes"
    );
}
