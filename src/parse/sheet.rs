//! Spreadsheets: XLSX and ODS workbooks, every sheet, read with `calamine`.
//!
//! A workbook is a zip archive; the archive walker (`source`) recognises one by its
//! entries (`xl/workbook.xml`, or an OpenDocument spreadsheet's `mimetype`) and hands it
//! here whole, since its parts refer to each other. Each sheet is read as a table: its
//! first rows settle the login and password columns ([`columns::decide`]), by header name
//! or by content, and every row is then reported as a table row is. XLSX sheets are read
//! cell by cell (memory: one row, plus the workbook's shared strings); ODS, whose reader
//! builds each sheet whole, within the archive limits the walker checked.

use std::io::{Read, Seek};

use calamine::{Data, DataRef, Ods, Reader, Xlsx};

use super::columns::{self, Columns};
use super::{Format, ParseStats, Sink};

/// Rows looked at to settle a sheet's columns.
const SAMPLE_ROWS: usize = 50;
/// Cells kept per row; more are dropped.
const MAX_CELLS: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SheetKind {
    Xlsx,
    Ods,
}

#[derive(Debug, thiserror::Error)]
pub enum SheetError {
    #[error("spreadsheet: {0}")]
    Xlsx(#[from] calamine::XlsxError),
    #[error("spreadsheet: {0}")]
    Ods(#[from] calamine::OdsError),
}

/// Reads every sheet of a workbook. A sheet that fails is reported to the sink as the end
/// of its rows (the error is returned after the other sheets are read).
pub fn parse<RS: Read + Seek>(
    kind: SheetKind,
    input: RS,
    max_field: usize,
    sink: &mut dyn Sink,
) -> Result<ParseStats, SheetError> {
    let mut stats = ParseStats::default();
    let mut first_error = None;
    match kind {
        SheetKind::Xlsx => {
            let mut book: Xlsx<RS> = Xlsx::new(input)?;
            for name in book.sheet_names() {
                sink.section(&name);
                let mut rows = RowSink::new(max_field, &mut stats);
                let result = (|| -> Result<(), calamine::XlsxError> {
                    let mut cells = book.worksheet_cells_reader(&name)?;
                    while let Some(cell) = cells.next_cell()? {
                        let (row, col) = cell.get_position();
                        rows.cell(row, col, text_ref(cell.get_value()), sink);
                    }
                    Ok(())
                })();
                rows.finish(sink);
                if let Err(e) = result {
                    first_error.get_or_insert(SheetError::Xlsx(e));
                }
            }
        }
        SheetKind::Ods => {
            let mut book: Ods<RS> = Ods::new(input)?;
            for name in book.sheet_names() {
                sink.section(&name);
                let mut rows = RowSink::new(max_field, &mut stats);
                match book.worksheet_range(&name) {
                    Ok(range) => {
                        let (r0, c0) = range.start().unwrap_or((0, 0));
                        for (i, row) in range.rows().enumerate() {
                            for (j, cell) in row.iter().enumerate() {
                                rows.cell(r0 + i as u32, c0 + j as u32, text(cell), sink);
                            }
                        }
                    }
                    Err(e) => {
                        first_error.get_or_insert(SheetError::Ods(e));
                    }
                }
                rows.finish(sink);
            }
        }
    }
    match first_error {
        Some(e) if stats.records == 0 => Err(e),
        Some(e) => {
            tracing::warn!(error = %e, "a sheet could not be read whole");
            Ok(stats)
        }
        None => Ok(stats),
    }
}

/// A cell's text: strings as they are, numbers and dates as displayed; empty cells none.
fn text(d: &Data) -> Option<String> {
    match d {
        Data::Empty => None,
        Data::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn text_ref(d: &DataRef<'_>) -> Option<String> {
    match d {
        DataRef::Empty => None,
        DataRef::String(s) => Some(s.clone()),
        DataRef::SharedString(s) => Some((*s).to_string()),
        DataRef::Int(i) => Some(i.to_string()),
        DataRef::Float(f) => Some(f.to_string()),
        DataRef::Bool(b) => Some(b.to_string()),
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => Some(s.clone()),
        DataRef::DateTime(d) => Some(d.to_string()),
        DataRef::Error(_) => None,
    }
}

/// Gathers cells into rows, settles the columns on the first rows, reports rows.
struct RowSink<'s> {
    max_field: usize,
    stats: &'s mut ParseStats,
    row: Option<u32>,
    cells: Vec<String>,
    /// Rows held until the columns are settled.
    sample: Vec<(u32, Vec<String>)>,
    columns: Option<Columns>,
}

impl<'s> RowSink<'s> {
    fn new(max_field: usize, stats: &'s mut ParseStats) -> Self {
        RowSink {
            max_field,
            stats,
            row: None,
            cells: Vec::new(),
            sample: Vec::new(),
            columns: None,
        }
    }

    fn cell(&mut self, row: u32, col: u32, value: Option<String>, sink: &mut dyn Sink) {
        if self.row != Some(row) {
            self.end_row(sink);
            self.row = Some(row);
        }
        let (Some(mut value), true) = (value, (col as usize) < MAX_CELLS) else {
            return;
        };
        if value.len() > self.max_field {
            let mut cut = self.max_field;
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            value.truncate(cut);
        }
        let col = col as usize;
        if self.cells.len() <= col {
            self.cells.resize(col + 1, String::new());
        }
        self.cells[col] = value;
    }

    fn end_row(&mut self, sink: &mut dyn Sink) {
        let Some(row) = self.row.take() else {
            return;
        };
        let cells = std::mem::take(&mut self.cells);
        self.stats.lines += 1;
        self.stats.entries += 1;
        if cells.iter().all(String::is_empty) {
            sink.end_entry();
            return;
        }
        match self.columns {
            Some(c) => self.emit(row, &cells, c, sink),
            None => {
                self.sample.push((row, cells));
                if self.sample.len() == SAMPLE_ROWS {
                    self.settle(sink);
                }
            }
        }
    }

    /// Settles the columns from the sample and reports its rows (but a header).
    fn settle(&mut self, sink: &mut dyn Sink) {
        let rows: Vec<Vec<String>> = self.sample.iter().map(|(_, c)| c.clone()).collect();
        let (cols, header) = columns::decide(&rows).unwrap_or_default();
        self.columns = Some(cols);
        let sample = std::mem::take(&mut self.sample);
        for (i, (row, cells)) in sample.iter().enumerate() {
            if header && i == 0 {
                sink.end_entry();
                continue;
            }
            self.emit(*row, cells, cols, sink);
        }
    }

    fn emit(&mut self, row: u32, cells: &[String], cols: Columns, sink: &mut dyn Sink) {
        let refs: Vec<Option<&str>> = cells
            .iter()
            .map(|c| Some(c.as_str()).filter(|c| !c.is_empty()))
            .collect();
        self.stats.records +=
            columns::emit_row(&refs, cols, u64::from(row) + 1, Format::Sheet, sink);
        sink.end_entry();
    }

    fn finish(mut self, sink: &mut dyn Sink) {
        self.end_row(sink);
        if self.columns.is_none() {
            self.settle(sink);
        }
    }
}
