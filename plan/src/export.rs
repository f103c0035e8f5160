//! A CRM export: a CSV file whose header names the request's members as the API spells them, read
//! as spreadsheets write it (quoted fields, embedded delimiters and quotes, CRLF, a UTF-8 byte-order
//! mark, `;` as the delimiter where the locale wants it), each row decoded by the same rules as
//! every other request ([`DisassociationRequest::from_document`]).
//!
//! UTF-8 only: a UTF-16 byte-order mark, or NUL bytes in the header (UTF-16 without a mark), refuse
//! the file up front, and every field is checked as UTF-8 as it is read, the first byte that is not
//! refusing the whole file with its line and column: a Windows-1252 export would otherwise plan
//! identifiers that are not the CRM's.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};

use opportunity_disassociator::domain::request::{
    CATALOG, Catalog, DisassociationRequest, FieldError, OPPORTUNITY_IDENTIFIER, OpportunityId,
    RELATED_ENTITY_IDENTIFIER, RELATED_ENTITY_TYPE, REPLACE_WITH, REPLACE_WITH_IDENTIFIER, REPLACE_WITH_TYPE,
    RelatedEntity,
};
use serde_json::{Map, Value};

/// The columns that must be there, in the API's spelling.
const REQUIRED: [&str; 4] = [CATALOG, OPPORTUNITY_IDENTIFIER, RELATED_ENTITY_TYPE, RELATED_ENTITY_IDENTIFIER];
/// The replacement's columns: both or neither.
const REPLACEMENT: [&str; 2] = [REPLACE_WITH_TYPE, REPLACE_WITH_IDENTIFIER];

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// What an export holds.
#[derive(Debug, Default)]
pub struct Export {
    /// Rows read (blank rows, every field empty, are not counted).
    pub rows: usize,
    /// The requests of the rows without faults, each once, in the order of their first row.
    pub requests: Vec<DisassociationRequest>,
    /// Every row at fault, by line.
    pub faults: Vec<RowFault>,
    /// Rows that repeat an earlier row's request: planned once.
    pub duplicates: Vec<Duplicate>,
    /// Header columns that are not members of a request, left out.
    pub ignored_columns: Vec<String>,
}

/// A row that is not a valid request: its line (where the record starts) and each member at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFault {
    pub line: u64,
    pub errors: Vec<FieldError>,
}

/// A row whose request an earlier row already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duplicate {
    pub line: u64,
    pub first: u64,
}

/// Why a file was refused whole.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Not UTF-8, or a header without the members: an input fault.
    #[error("{0}")]
    Input(String),
    #[error("reading failed: {0}")]
    Io(#[from] io::Error),
}

/// Reads an export.
pub fn read(input: impl Read) -> Result<Export, Refused> {
    let mut input = BufReader::new(input);
    let mut first_line = Vec::new();
    input.read_until(b'\n', &mut first_line)?;
    if first_line.starts_with(b"\xFF\xFE") || first_line.starts_with(b"\xFE\xFF") || first_line.contains(&0) {
        return Err(Refused::Input(format!("the file is UTF-16; {}", SAVE_AS_UTF8)));
    }
    let header_line = first_line.strip_prefix(UTF8_BOM).unwrap_or(&first_line).to_vec();
    let delimiter = delimiter(&header_line);
    // Records end at LF only, the CR of a CRLF taken off the last field ([`text_fields`]): csv's own
    // CRLF handling reports the record after each CRLF one line early.
    let mut reader = csv::ReaderBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(io::Cursor::new(header_line).chain(input));

    let mut record = csv::ByteRecord::new();
    if !reader.read_byte_record(&mut record).map_err(csv_error)? {
        return Err(Refused::Input("the file is empty: the first line must be the header".into()));
    }
    let header: Vec<String> = text_fields(&record, &[])?.into_iter().map(str::to_owned).collect();
    let columns = Columns::of(&header)?;
    let mut export = Export { ignored_columns: columns.ignored.clone(), ..Export::default() };

    let mut planned: Vec<(u64, DisassociationRequest)> = Vec::new();
    let mut first_of: HashMap<DisassociationRequest, u64> = HashMap::new();
    while reader.read_byte_record(&mut record).map_err(csv_error)? {
        let line = record.position().map_or(0, |p| p.line());
        let fields = text_fields(&record, &header)?;
        if fields.iter().all(|f| f.is_empty()) {
            continue;
        }
        export.rows += 1;
        let mut errors = Vec::new();
        if fields.len() != header.len() {
            errors.push(FieldError {
                field: "row",
                message: format!(
                    "has {} fields, the header {} (a delimiter inside an unquoted field?)",
                    fields.len(),
                    header.len()
                ),
            });
        }
        match DisassociationRequest::from_document(&columns.document(&fields)) {
            Ok(request) if errors.is_empty() => match first_of.get(&request) {
                Some(&first) => export.duplicates.push(Duplicate { line, first }),
                None => {
                    first_of.insert(request.clone(), line);
                    planned.push((line, request));
                }
            },
            Ok(_) => export.faults.push(RowFault { line, errors }),
            Err(invalid) => {
                errors.extend(invalid.errors);
                export.faults.push(RowFault { line, errors });
            }
        }
    }

    // A replacement that another row removes from the same opportunity: which one wins would depend on
    // the order the queue delivers them, so neither order is guessed.
    let removed: HashMap<(Catalog, &OpportunityId, &RelatedEntity), u64> =
        planned.iter().map(|(line, r)| ((r.catalog, &r.opportunity, &r.entity), *line)).collect();
    let mut conflicts = Vec::new();
    for (line, request) in &planned {
        let Some(replacement) = &request.replace_with else { continue };
        if let Some(other) = removed.get(&(request.catalog, &request.opportunity, replacement)) {
            conflicts.push(RowFault {
                line: *line,
                errors: vec![FieldError {
                    field: REPLACE_WITH,
                    message: format!(
                        "puts {replacement} on {}, which line {other} removes from it: the outcome would depend on the order the queue delivers them",
                        request.opportunity
                    ),
                }],
            });
        }
    }
    let conflicting: Vec<u64> = conflicts.iter().map(|c| c.line).collect();
    export.requests =
        planned.into_iter().filter(|(line, _)| !conflicting.contains(line)).map(|(_, request)| request).collect();
    export.faults.extend(conflicts);
    export.faults.sort_by_key(|f| f.line);
    Ok(export)
}

const SAVE_AS_UTF8: &str =
    "only UTF-8 is read: save the export as UTF-8 (in a spreadsheet, \"CSV UTF-8\"), then run this again";

/// `;` when the header holds more of them than commas (a spreadsheet in a locale with decimal commas).
fn delimiter(header: &[u8]) -> u8 {
    let count = |b: u8| header.iter().filter(|&&c| c == b).count();
    if count(b';') > count(b',') { b';' } else { b',' }
}

fn csv_error(e: csv::Error) -> Refused {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => Refused::Io(e),
        other => Refused::Input(format!("the file is not CSV: {other:?}")),
    }
}

/// A record's fields as text (the last without the CR of a CRLF), or the file refused at the first
/// byte that is not UTF-8.
fn text_fields<'a>(record: &'a csv::ByteRecord, header: &[String]) -> Result<Vec<&'a str>, Refused> {
    let line = record.position().map_or(0, |p| p.line());
    let last = record.len().saturating_sub(1);
    record
        .iter()
        .enumerate()
        .map(|(index, field)| {
            let field = if index == last { field.strip_suffix(b"\r").unwrap_or(field) } else { field };
            std::str::from_utf8(field).map_err(|e| {
                let column =
                    header.get(index).map_or_else(|| format!("field {}", index + 1), |c| format!("column {c}"));
                let byte = field[e.valid_up_to()];
                Refused::Input(format!("line {line}, {column}: byte 0x{byte:02X} is not UTF-8; {SAVE_AS_UTF8}"))
            })
        })
        .collect()
}

/// Where each member is in a row.
struct Columns {
    required: [usize; 4],
    replacement: Option<[usize; 2]>,
    ignored: Vec<String>,
}

impl Columns {
    fn of(header: &[String]) -> Result<Self, Refused> {
        let names: Vec<&str> = header.iter().map(|h| h.trim()).collect();
        let find = |member: &str| -> Result<Option<usize>, Refused> {
            let mut found = names.iter().enumerate().filter(|(_, n)| **n == member).map(|(i, _)| i);
            match (found.next(), found.next()) {
                (Some(_), Some(_)) => Err(Refused::Input(format!("the header names {member} twice"))),
                (index, _) => Ok(index),
            }
        };
        let mut missing = Vec::new();
        let mut required = [0; 4];
        for (slot, member) in required.iter_mut().zip(REQUIRED) {
            match find(member)? {
                Some(index) => *slot = index,
                None => missing.push(member),
            }
        }
        if !missing.is_empty() {
            return Err(Refused::Input(format!(
                "the header lacks {} (members are spelled as the API spells them, case-sensitive); it holds: {}",
                missing.join(", "),
                names.join(", ")
            )));
        }
        let replacement = match (find(REPLACEMENT[0])?, find(REPLACEMENT[1])?) {
            (Some(t), Some(i)) => Some([t, i]),
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                return Err(Refused::Input(format!(
                    "the header must name both {} and {}, or neither",
                    REPLACEMENT[0], REPLACEMENT[1]
                )));
            }
        };
        let known: Vec<&str> = REQUIRED.iter().chain(REPLACEMENT.iter()).copied().collect();
        let ignored = names.iter().filter(|n| !known.contains(n)).map(|n| n.to_string()).collect();
        Ok(Self { required, replacement, ignored })
    }

    /// The row as a request document; an empty cell is a missing member.
    fn document(&self, fields: &[&str]) -> Value {
        let cell = |index: usize| fields.get(index).copied().filter(|v| !v.is_empty());
        let mut doc = Map::new();
        for (member, index) in REQUIRED.iter().zip(self.required) {
            if let Some(value) = cell(index) {
                doc.insert((*member).to_owned(), Value::String(value.to_owned()));
            }
        }
        if let Some(indexes) = self.replacement {
            let mut replacement = Map::new();
            for (member, index) in [RELATED_ENTITY_TYPE, RELATED_ENTITY_IDENTIFIER].iter().zip(indexes) {
                if let Some(value) = cell(index) {
                    replacement.insert((*member).to_owned(), Value::String(value.to_owned()));
                }
            }
            if !replacement.is_empty() {
                doc.insert(REPLACE_WITH.to_owned(), Value::Object(replacement));
            }
        }
        Value::Object(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "Catalog,OpportunityIdentifier,RelatedEntityType,RelatedEntityIdentifier";

    fn export(text: &str) -> Export {
        read(text.as_bytes()).unwrap()
    }

    fn refusal(bytes: &[u8]) -> String {
        match read(bytes) {
            Err(Refused::Input(message)) => message,
            other => panic!("expected an input refusal, got {other:?}"),
        }
    }

    fn fields(fault: &RowFault) -> Vec<&'static str> {
        fault.errors.iter().map(|e| e.field).collect()
    }

    #[test]
    fn reads_a_spreadsheets_csv_with_bom_crlf_and_quoted_fields() {
        let text = format!(
            "\u{feff}{HEADER},Account name\r\nSandbox,O1,AwsProducts,\"Amazon, \"\"EC2\"\"\",\"Acme, Inc.\"\r\nSandbox,O2,Solutions,S-1,x\r\n"
        );
        let export = export(&text);
        assert!(export.faults.is_empty(), "{:?}", export.faults);
        assert_eq!(export.rows, 2);
        assert_eq!(export.requests[0].entity.identifier(), "Amazon, \"EC2\"");
        assert_eq!(export.ignored_columns, ["Account name"]);
    }

    #[test]
    fn a_semicolon_delimiter_is_known_from_the_header() {
        let text =
            "Catalog;OpportunityIdentifier;RelatedEntityType;RelatedEntityIdentifier\nSandbox;O1;AwsProducts;a,b\n";
        let export = export(text);
        assert_eq!(export.requests.len(), 1);
        assert_eq!(export.requests[0].entity.identifier(), "a,b");
    }

    #[test]
    fn a_fault_is_reported_at_the_line_where_its_record_starts_with_each_member() {
        let text = format!("{HEADER}\nSandbox,O1,AwsProducts,\"two\nlines\"\nProd,X1,Solutions,S-1\n");
        let export = export(&text);
        assert_eq!(export.rows, 2);
        assert_eq!(export.faults.len(), 1);
        assert_eq!(export.faults[0].line, 4);
        assert_eq!(fields(&export.faults[0]), ["Catalog", "OpportunityIdentifier"]);
    }

    #[test]
    fn replacements_are_read_from_their_two_columns() {
        let text = format!(
            "{HEADER},ReplaceWith.RelatedEntityType,ReplaceWith.RelatedEntityIdentifier\n\
             Sandbox,O1,Solutions,S-1,Solutions,S-2\nSandbox,O1,Solutions,S-3,,\nSandbox,O1,Solutions,S-4,Solutions,\n"
        );
        let export = export(&text);
        assert_eq!(export.requests.len(), 2);
        assert_eq!(export.requests[0].replace_with.as_ref().map(|r| r.identifier()), Some("S-2"));
        assert_eq!(export.requests[1].replace_with, None);
        assert_eq!(export.faults.len(), 1);
        assert_eq!(fields(&export.faults[0]), ["ReplaceWith.RelatedEntityIdentifier"]);
    }

    #[test]
    fn duplicates_are_planned_once_and_reported() {
        let text =
            format!("{HEADER}\nSandbox,O1,Solutions,S-1\nSandbox,O2,Solutions,S-1\r\nSandbox,O1,Solutions,S-1\n");
        let export = export(&text);
        assert_eq!(export.requests.len(), 2);
        assert_eq!(export.duplicates, [Duplicate { line: 4, first: 2 }]);
    }

    #[test]
    fn a_replacement_another_row_removes_is_a_fault() {
        let text = format!(
            "{HEADER},ReplaceWith.RelatedEntityType,ReplaceWith.RelatedEntityIdentifier\n\
             Sandbox,O1,Solutions,S-1,Solutions,S-2\nSandbox,O1,Solutions,S-2,,\nSandbox,O2,Solutions,S-9,Solutions,S-2\n"
        );
        let export = export(&text);
        assert_eq!(export.faults.len(), 1, "{:?}", export.faults);
        assert_eq!(export.faults[0].line, 2);
        assert!(export.faults[0].errors[0].message.contains("line 3 removes"), "{:?}", export.faults);
        assert_eq!(export.requests.len(), 2, "the removal, and O2's replacement");
    }

    #[test]
    fn a_row_with_the_wrong_number_of_fields_is_a_fault() {
        let export = export(&format!("{HEADER}\nSandbox,O1,AwsProducts,a,b\n"));
        assert_eq!(fields(&export.faults[0]), ["row"]);
    }

    #[test]
    fn blank_rows_are_skipped() {
        let export = export(&format!("{HEADER}\n,,,\n\nSandbox,O1,Solutions,S-1\n"));
        assert_eq!((export.rows, export.requests.len()), (1, 1));
    }

    #[test]
    fn other_encodings_are_refused_with_the_line() {
        let latin1 = format!("{HEADER}\nSandbox,O1,AwsProducts,Caf\u{e9}\n").replace('\u{e9}', "\u{1}");
        let mut bytes = latin1.into_bytes();
        let at = bytes.iter().position(|&b| b == 1).unwrap();
        bytes[at] = 0xE9;
        let message = refusal(&bytes);
        assert!(message.starts_with("line 2, column RelatedEntityIdentifier: byte 0xE9 is not UTF-8"), "{message}");
        let utf16: Vec<u8> = [0xFF, 0xFE].into_iter().chain(HEADER.encode_utf16().flat_map(u16::to_le_bytes)).collect();
        assert!(refusal(&utf16).starts_with("the file is UTF-16"));
    }

    #[test]
    fn a_header_without_the_members_is_refused() {
        let message = refusal(b"catalog,OpportunityIdentifier,RelatedEntityType\nSandbox,O1,Solutions\n");
        assert!(message.contains("lacks Catalog, RelatedEntityIdentifier"), "{message}");
        assert!(refusal(format!("{HEADER},ReplaceWith.RelatedEntityType\n").as_bytes()).contains("both"));
        assert!(refusal(b"").contains("empty"));
    }
}
