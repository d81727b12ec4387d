//! An import's lines parsed on a helper thread while the caller checks or
//! writes the ones before them.
//!
//! Parsing a line strictly (JSON, the record's type, the unknown-field
//! check, validation) is most of an import's own work. The caller reads
//! lines (cheap) and hands them over in chunks; one thread parses them and
//! hands the items back in the same order. A bounded number of chunks is in
//! flight, enough for the parser to stay a whole write batch ahead of the
//! caller, so memory stays flat whatever the file's size.

use std::io::BufRead;

use super::{BATCH_SIZE, Item, TransferError, numbered_lines, parse_line};

/// Lines in one chunk handed to the parser.
const CHUNK_LINES: usize = 1_000;

/// Chunks in flight: the parser can run this many lines ahead of the
/// caller, a little more than one write batch, so it parses the next batch
/// while the caller waits for the store to write the last.
const IN_FLIGHT: usize = BATCH_SIZE / CHUNK_LINES + 2;

/// One line's outcome: its 1-based number, its length in bytes with the
/// line end, and its item (`None` for a blank or header line) or why not.
pub(super) type Parsed = (u64, u64, Result<Option<Item>, TransferError>);

/// A line as read, or the read error that ends the input.
type Read = Result<(u64, String), TransferError>;

/// The lines of an input, parsed on a helper thread, in order.
pub(super) struct ParsedLines<I> {
    lines: I,
    /// Set once the input ended (or failed to read).
    read_all: bool,
    to_parser: Option<std::sync::mpsc::Sender<Vec<Read>>>,
    from_parser: tokio::sync::mpsc::Receiver<Vec<Parsed>>,
    in_flight: usize,
}

impl<I: Iterator<Item = Read>> ParsedLines<I> {
    fn start(lines: I) -> Self {
        let (to_parser, chunks) = std::sync::mpsc::channel::<Vec<Read>>();
        let (results, from_parser) = tokio::sync::mpsc::channel(IN_FLIGHT);
        // The thread ends when the caller drops either end: no more chunks
        // to parse, or no one to take the results.
        let spawned = std::thread::Builder::new()
            .name("datastore-import-parse".into())
            .spawn(move || {
                while let Ok(chunk) = chunks.recv() {
                    let parsed: Vec<Parsed> = chunk.into_iter().map(parse_read).collect();
                    if results.blocking_send(parsed).is_err() {
                        return;
                    }
                }
            });
        ParsedLines {
            lines,
            read_all: false,
            // Without a thread, the caller parses each chunk itself.
            to_parser: spawned.ok().map(|_| to_parser),
            from_parser,
            in_flight: 0,
        }
    }

    /// The next chunk of parsed lines, in order; `None` after the last.
    pub(super) async fn next_chunk(&mut self) -> Option<Vec<Parsed>> {
        while !self.read_all && self.in_flight < IN_FLIGHT {
            let chunk = self.read_chunk();
            if chunk.is_empty() {
                break;
            }
            match &self.to_parser {
                Some(parser) => match parser.send(chunk) {
                    Ok(()) => self.in_flight += 1,
                    // The parser is gone (it panicked): take what it
                    // finished, then report it stopped, in order; never
                    // end as if the input had.
                    Err(_) => {
                        self.read_all = true;
                        if self.in_flight == 0 {
                            return Some(parser_stopped());
                        }
                        break;
                    }
                },
                None => return Some(chunk.into_iter().map(parse_read).collect()),
            }
        }
        if self.in_flight == 0 {
            return None;
        }
        self.in_flight -= 1;
        match self.from_parser.recv().await {
            Some(parsed) => Some(parsed),
            None => {
                self.read_all = true;
                self.in_flight = 0;
                Some(parser_stopped())
            }
        }
    }

    /// Up to [`CHUNK_LINES`] lines; a read error is the chunk's last.
    fn read_chunk(&mut self) -> Vec<Read> {
        let mut chunk = Vec::with_capacity(CHUNK_LINES);
        while chunk.len() < CHUNK_LINES {
            match self.lines.next() {
                Some(read) => {
                    let failed = read.is_err();
                    chunk.push(read);
                    if failed {
                        self.read_all = true;
                        break;
                    }
                }
                None => {
                    self.read_all = true;
                    break;
                }
            }
        }
        chunk
    }
}

/// The error that takes the place of lines the parsing thread did not
/// return.
fn parser_stopped() -> Vec<Parsed> {
    vec![(
        0,
        0,
        Err(TransferError::Io {
            context: "parsing the input".into(),
            source: std::io::Error::other("the parsing thread stopped"),
        }),
    )]
}

fn parse_read(read: Read) -> Parsed {
    match read {
        Ok((line, text)) => (line, text.len() as u64 + 1, parse_line(line, &text)),
        Err(e) => (0, 0, Err(e)),
    }
}

/// The lines of `input`, numbered from 1 and parsed (see [`parse_line`])
/// on a helper thread.
pub(super) fn parsed_lines(input: impl BufRead) -> ParsedLines<impl Iterator<Item = Read>> {
    ParsedLines::start(numbered_lines(input))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile_line(i: usize) -> String {
        format!(r#"{{"kind":"profile","record":{{"id":"p{i}","username":"user{i}"}}}}"#)
    }

    async fn collect(mut parsed: ParsedLines<impl Iterator<Item = Read>>) -> Vec<Parsed> {
        let mut all = Vec::new();
        while let Some(chunk) = parsed.next_chunk().await {
            all.extend(chunk);
        }
        all
    }

    #[tokio::test]
    async fn every_line_comes_back_once_in_order() {
        let count = CHUNK_LINES * IN_FLIGHT * 3 + 17;
        let mut text = String::new();
        for i in 0..count {
            text.push_str(&profile_line(i));
            text.push('\n');
            if i % 100 == 0 {
                text.push('\n'); // a blank line is a line without an item
            }
        }
        let all = collect(parsed_lines(text.as_bytes())).await;
        let items: Vec<String> = all
            .iter()
            .filter_map(|(_, _, r)| r.as_ref().unwrap().as_ref().map(|i| i.key()))
            .collect();
        let expected: Vec<String> = (0..count).map(|i| format!("p{i}")).collect();
        assert_eq!(items, expected);
        let numbers: Vec<u64> = all.iter().map(|(line, ..)| *line).collect();
        let lines = text.lines().count() as u64;
        assert_eq!(numbers, (1..=lines).collect::<Vec<_>>());
        let bytes: u64 = all.iter().map(|(_, len, _)| len).sum();
        assert_eq!(bytes, text.len() as u64);
    }

    #[tokio::test]
    async fn a_bad_line_is_reported_at_its_place() {
        let mut text = String::new();
        for i in 0..2_500 {
            if i == 1_800 {
                text.push_str(
                    r#"{"kind":"profile","record":{"id":"p","username":"u","emial":"x@y"}}"#,
                );
            } else {
                text.push_str(&profile_line(i));
            }
            text.push('\n');
        }
        let all = collect(parsed_lines(text.as_bytes())).await;
        assert_eq!(all.len(), 2_500);
        let (line, _, first_error) = all.iter().find(|(_, _, r)| r.is_err()).unwrap();
        assert_eq!(*line, 1_801);
        let message = first_error.as_ref().unwrap_err().to_string();
        assert!(
            message.contains("line 1801") && message.contains("emial"),
            "{message}"
        );
    }

    /// A reader that fails after some lines, as a disk error would.
    struct FailsAfter {
        text: std::io::Cursor<Vec<u8>>,
    }

    impl std::io::Read for FailsAfter {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.text.read(buf)? {
                0 => Err(std::io::Error::other("disk on fire")),
                n => Ok(n),
            }
        }
    }

    #[tokio::test]
    async fn a_read_error_comes_after_the_lines_before_it_and_ends_the_input() {
        let mut text = String::new();
        for i in 0..1_500 {
            text.push_str(&profile_line(i));
            text.push('\n');
        }
        let reader = std::io::BufReader::new(FailsAfter {
            text: std::io::Cursor::new(text.into_bytes()),
        });
        let all = collect(parsed_lines(reader)).await;
        assert_eq!(all.len(), 1_501, "every line, then the error, then nothing");
        assert!(all[..1_500].iter().all(|(_, _, r)| r.is_ok()));
        let error = all[1_500].2.as_ref().unwrap_err().to_string();
        assert!(
            error.contains("line 1501") && error.contains("disk on fire"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn dropping_it_early_ends_the_parser() {
        let mut text = String::new();
        for i in 0..CHUNK_LINES * IN_FLIGHT * 4 {
            text.push_str(&profile_line(i));
            text.push('\n');
        }
        let mut parsed = parsed_lines(text.as_bytes());
        let first = parsed.next_chunk().await.unwrap();
        assert_eq!(first.len(), CHUNK_LINES);
        let to_parser = parsed.to_parser.clone().unwrap();
        drop(parsed);
        // Once the parser has seen the results' receiver go, it stops
        // taking chunks.
        let mut stopped = false;
        for _ in 0..500 {
            if to_parser.send(Vec::new()).is_err() {
                stopped = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(stopped, "the parsing thread still runs");
    }
}
