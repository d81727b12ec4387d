//! An import's lines parsed on a helper thread while the caller checks or
//! writes the ones before them.
//!
//! Parsing a line strictly (JSON, the record's type, the unknown-field
//! check, validation) is most of an import's own work. The caller reads
//! lines (cheap) and hands them over in chunks; one thread parses them and
//! hands the items back in the same order. A bounded number of chunks is in
//! flight, enough for the parser to stay a whole write batch ahead of the
//! caller, so memory stays flat whatever the file's size.
//!
//! The parser also fingerprints each chunk (a hash of its lines' text).
//! The write that follows a check compares each chunk with the check's
//! fingerprint before it reads it, and then reads it plainly: lines the
//! check passed are not checked twice, and a line changed since the check
//! is refused before its batch is written.

use std::hash::{BuildHasher, Hash, Hasher};
use std::io::BufRead;
use std::sync::Arc;

use super::{
    BATCH_SIZE, Item, TransferError, backup, numbered_lines, parse_line, parse_line_trying,
};

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
pub(super) type Read = Result<(u64, String), TransferError>;

/// What a check read, chunk by chunk, to write it without checking it
/// again: a hash of each chunk's lines, in order.
#[derive(Clone, Default)]
pub(super) struct Fingerprints {
    /// The hasher's keys, chosen when the check starts.
    state: foldhash::quality::RandomState,
    /// One hash per chunk of [`CHUNK_LINES`] lines.
    pub(super) chunks: Vec<u64>,
}

impl std::fmt::Debug for Fingerprints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprints({} chunks)", self.chunks.len())
    }
}

impl PartialEq for Fingerprints {
    fn eq(&self, other: &Self) -> bool {
        self.chunks == other.chunks
    }
}

impl Eq for Fingerprints {}

impl Fingerprints {
    /// A hash of an item's JSON, with these keys: an item hashes alike
    /// whether its JSON was written here or read as a line that writes
    /// exactly so.
    pub(super) fn json(&self, json: &[u8]) -> u64 {
        self.hash(json)
    }

    /// A hash of anything, with these keys.
    pub(super) fn hash(&self, value: impl Hash) -> u64 {
        self.state.hash_one(value)
    }

    /// The hash of one chunk of lines as read.
    fn of(&self, chunk: &[Read]) -> u64 {
        let mut h = self.state.build_hasher();
        for read in chunk {
            match read {
                Ok((line, text)) => (line, text.as_str()).hash(&mut h),
                // A read error ends the input; a check that met one failed.
                Err(_) => u64::MAX.hash(&mut h),
            }
        }
        h.finish()
    }
}

/// How the parsing thread reads each chunk.
#[derive(Clone)]
pub(super) enum Mode {
    /// Strictly, every line ([`parse_line`]); each chunk is fingerprinted
    /// with these keys.
    Strict(Fingerprints),
    /// Lines a check passed: a chunk whose fingerprint is the check's is
    /// read plainly (a line the plain read refuses is read strictly, for
    /// the check's own answer); one that differs is refused whole.
    Checked(Arc<Fingerprints>),
}

/// One chunk's lines, parsed, and its fingerprint.
pub(super) struct Chunk {
    /// The lines, in order.
    pub(super) lines: Vec<Parsed>,
    /// The hash of the lines' text ([`Mode::Strict`]; 0 otherwise).
    pub(super) fingerprint: u64,
    /// In [`Mode::Strict`], one per line: for a line that is exactly its
    /// item's JSON, [`Fingerprints::json`] of its text, which is the
    /// item's content hash without writing the item out again.
    pub(super) json: Vec<Option<u64>>,
}

/// The lines of an input, parsed on a helper thread, in order.
pub(super) struct ParsedLines<I> {
    lines: I,
    /// Set once the input ended (or failed to read).
    read_all: bool,
    to_parser: Option<std::sync::mpsc::Sender<(usize, Vec<Read>)>>,
    from_parser: tokio::sync::mpsc::Receiver<Chunk>,
    in_flight: usize,
    /// How chunks are read, for a caller without a thread.
    mode: Mode,
    /// Chunks read from the input so far.
    chunks_read: usize,
}

impl<I: Iterator<Item = Read>> ParsedLines<I> {
    fn start(lines: I, mode: Mode) -> Self {
        let (to_parser, chunks) = std::sync::mpsc::channel::<(usize, Vec<Read>)>();
        let (results, from_parser) = tokio::sync::mpsc::channel(IN_FLIGHT);
        // The thread ends when the caller drops either end: no more chunks
        // to parse, or no one to take the results.
        let parser_mode = mode.clone();
        let spawned = std::thread::Builder::new()
            .name("datastore-import-parse".into())
            .spawn(move || {
                while let Ok((index, chunk)) = chunks.recv() {
                    if results
                        .blocking_send(parse_chunk(&parser_mode, index, chunk))
                        .is_err()
                    {
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
            mode,
            chunks_read: 0,
        }
    }

    /// The next chunk of parsed lines, in order; `None` after the last.
    pub(super) async fn next_chunk(&mut self) -> Option<Chunk> {
        while !self.read_all && self.in_flight < IN_FLIGHT {
            let chunk = self.read_chunk();
            if chunk.is_empty() {
                break;
            }
            let index = self.chunks_read;
            self.chunks_read += 1;
            match &self.to_parser {
                Some(parser) => match parser.send((index, chunk)) {
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
                None => return Some(parse_chunk(&self.mode, index, chunk)),
            }
        }
        if self.in_flight == 0 {
            return self.ended_early();
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

    /// At the end of the input: in [`Mode::Checked`], an input that ends
    /// before the check's did is refused (what was read is written, and it
    /// is what the check passed, but not all of it).
    fn ended_early(&mut self) -> Option<Chunk> {
        if let Mode::Checked(checked) = &self.mode
            && self.chunks_read < checked.chunks.len()
        {
            let read = self.chunks_read;
            self.chunks_read = checked.chunks.len();
            return Some(Chunk {
                lines: vec![(
                    0,
                    0,
                    Err(TransferError::Changed {
                        lines: format!("the input ends after line {}", read * CHUNK_LINES),
                    }),
                )],
                fingerprint: 0,
                json: Vec::new(),
            });
        }
        None
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
fn parser_stopped() -> Chunk {
    Chunk {
        lines: vec![(
            0,
            0,
            Err(TransferError::Io {
                context: "parsing the input".into(),
                source: std::io::Error::other("the parsing thread stopped"),
            }),
        )],
        fingerprint: 0,
        json: Vec::new(),
    }
}

/// Parses the `index`th chunk of the input.
fn parse_chunk(mode: &Mode, index: usize, chunk: Vec<Read>) -> Chunk {
    match mode {
        Mode::Strict(keys) => {
            // Each chunk tries its lines as an export writes them until
            // one is not (see `parse_line_trying`).
            let mut exact = true;
            let fingerprint = keys.of(&chunk);
            let mut json = Vec::with_capacity(chunk.len());
            let lines = chunk
                .into_iter()
                .map(|r| {
                    parse_read(r, |line, text| {
                        let parsed = parse_line_trying(line, text, &mut exact);
                        let read_exactly = exact && matches!(parsed, Ok(Some(_)));
                        json.push(read_exactly.then(|| keys.json(text.as_bytes())));
                        parsed
                    })
                })
                .collect();
            Chunk {
                lines,
                fingerprint,
                json,
            }
        }
        Mode::Checked(checked) => {
            // A read error ends the input: reported as it is.
            if let Some(Err(_)) = chunk.last() {
                let error = chunk.into_iter().find_map(Result::err);
                return Chunk {
                    lines: error.into_iter().map(|e| (0, 0, Err(e))).collect(),
                    fingerprint: 0,
                    json: Vec::new(),
                };
            }
            if checked.chunks.get(index) != Some(&checked.of(&chunk)) {
                let first = index * CHUNK_LINES + 1;
                let last = first + chunk.len() - 1;
                return Chunk {
                    lines: vec![(
                        0,
                        0,
                        Err(TransferError::Changed {
                            lines: format!("lines {first}-{last} differ from what was checked"),
                        }),
                    )],
                    fingerprint: 0,
                    json: Vec::new(),
                };
            }
            Chunk {
                lines: chunk
                    .into_iter()
                    .map(|r| parse_read(r, parse_checked_line))
                    .collect(),
                fingerprint: 0,
                json: Vec::new(),
            }
        }
    }
}

fn parse_read(
    read: Read,
    mut parse: impl FnMut(u64, &str) -> Result<Option<Item>, TransferError>,
) -> Parsed {
    match read {
        Ok((line, text)) => (line, text.len() as u64 + 1, parse(line, &text)),
        Err(e) => (0, 0, Err(e)),
    }
}

/// Reads a line a check passed: plainly (the check refused unknown fields
/// and validated it), or, should the plain read refuse it (a key given
/// twice, which the strict read takes the last of), as the check read it.
fn parse_checked_line(line: u64, text: &str) -> Result<Option<Item>, TransferError> {
    if text.trim().is_empty() || (line == 1 && backup::is_header(text)) {
        return Ok(None);
    }
    match serde_json::from_str::<Item>(text) {
        Ok(item) => Ok(Some(item)),
        Err(_) => parse_line(line, text),
    }
}

/// The lines of `input`, numbered from 1 and parsed strictly (see
/// [`parse_line`]) on a helper thread; each chunk fingerprinted with
/// `keys`.
pub(super) fn parsed_lines(
    input: impl BufRead,
    keys: Fingerprints,
) -> ParsedLines<impl Iterator<Item = Read>> {
    ParsedLines::start(numbered_lines(input), Mode::Strict(keys))
}

/// The lines of `input`, which a check passed with these fingerprints,
/// each chunk compared with its fingerprint and then read plainly on a
/// helper thread.
pub(super) fn checked_lines(
    input: impl BufRead,
    checked: Arc<Fingerprints>,
) -> ParsedLines<impl Iterator<Item = Read>> {
    ParsedLines::start(numbered_lines(input), Mode::Checked(checked))
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
            all.extend(chunk.lines);
        }
        all
    }

    /// Parses `text` strictly; its lines and the fingerprints read.
    async fn check(text: &str) -> (Vec<Parsed>, Arc<Fingerprints>) {
        let mut read = Fingerprints::default();
        let mut parsed = parsed_lines(text.as_bytes(), read.clone());
        let mut all = Vec::new();
        while let Some(chunk) = parsed.next_chunk().await {
            read.chunks.push(chunk.fingerprint);
            all.extend(chunk.lines);
        }
        (all, Arc::new(read))
    }

    fn items(parsed: &[Parsed]) -> Vec<(u64, u64, Option<Item>)> {
        parsed
            .iter()
            .map(|(line, len, r)| (*line, *len, r.as_ref().unwrap().clone()))
            .collect()
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
        let all = collect(parsed_lines(text.as_bytes(), Default::default())).await;
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
        let all = collect(parsed_lines(text.as_bytes(), Default::default())).await;
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
        let all = collect(parsed_lines(reader, Default::default())).await;
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
        let mut parsed = parsed_lines(text.as_bytes(), Default::default());
        let first = parsed.next_chunk().await.unwrap();
        assert_eq!(first.lines.len(), CHUNK_LINES);
        let to_parser = parsed.to_parser.clone().unwrap();
        drop(parsed);
        // Once the parser has seen the results' receiver go, it stops
        // taking chunks.
        let mut stopped = false;
        for _ in 0..500 {
            if to_parser.send((0, Vec::new())).is_err() {
                stopped = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(stopped, "the parsing thread still runs");
    }

    /// Lines of every shape an export has: each kind (records with
    /// nested values, events, a log entry), fields in the record's order
    /// and in sorted order, a blank line, a backup's header, a key given
    /// twice, escapes.
    fn varied_text(lines: usize) -> String {
        use datastore_core::{
            AnyRecord, LogEntry, LogId, LogOp, Profile, ProfileId, Run, RunEvent, RunId, StepRun,
            Workflow, WorkflowId,
        };
        let mut text = String::from(
            r#"{"backup":{"feed_position":0,"backend":"rocksdb","taken":"2026-12-01T10:00:00Z"}}"#,
        );
        text.push('\n');
        for i in 0..lines {
            let item = match i % 4 {
                0 => {
                    let mut p = Profile::new(format!("user{i}"));
                    p.id = ProfileId::new(format!("p{i}"));
                    p.name = format!("Zoë \"{i}\"\n\t\u{1F600}");
                    Item::Record(AnyRecord::Profile(p))
                }
                1 => {
                    let mut w = Workflow::new(format!("init{i}"), "p0");
                    w.id = WorkflowId::new(format!("w{i}"));
                    Item::Record(AnyRecord::Workflow(w))
                }
                2 => {
                    let mut step = StepRun::new("fetch", "io");
                    step.output.push(RunEvent::new(
                        "progress",
                        serde_json::json!({"n": i, "f": 2.5, "big": u64::MAX, "a": [1, "x", null]}),
                    ));
                    let mut r = Run::new("w1", vec![step]);
                    r.id = RunId::new(format!("r{i}"));
                    r.number = i as u64;
                    r.owner_id = ProfileId::new("p0");
                    Item::Record(AnyRecord::Run(r))
                }
                _ => Item::LogEntry(LogEntry {
                    log_id: LogId::new(format!("l{i}")),
                    seq: 0,
                    op: LogOp {
                        name: format!("op{i}"),
                        author_id: "author".into(),
                        ..LogOp::default()
                    },
                }),
            };
            let line = match i % 3 {
                // The record's own field order.
                0 => serde_json::to_string(&item).unwrap(),
                // Sorted keys, "record" before "kind".
                1 => serde_json::to_value(&item).unwrap().to_string(),
                _ if i % 5 == 0 => String::new(),
                // A key given twice: the strict read keeps the last.
                _ => {
                    let json = serde_json::to_string(&item).unwrap();
                    let first = json.split(r#""record":{""#).nth(1).unwrap();
                    let key = &first[..first.find('"').unwrap()];
                    json.replacen(
                        r#""record":{"#,
                        &format!(r#""record":{{"{key}":"overwritten","#),
                        1,
                    )
                }
            };
            text.push_str(&line);
            text.push('\n');
        }
        text
    }

    /// Lines written exactly as their items write themselves are read as
    /// the strict read reads them, and hashed as their items' JSON; a line
    /// written otherwise is read strictly, and so are the rest of its
    /// chunk, and the next chunk tries again.
    #[tokio::test]
    async fn lines_read_exactly_are_what_the_strict_read_gives() {
        let varied = varied_text(CHUNK_LINES);
        let mut exact_lines: Vec<String> = varied
            .lines()
            .enumerate()
            .filter_map(|(i, l)| parse_line(i as u64 + 1, l).unwrap())
            .map(|item| serde_json::to_string(&item).unwrap())
            .collect();
        exact_lines.extend(exact_lines.clone());
        assert!(exact_lines.len() > CHUNK_LINES + 500);
        // Line 501 is written with its keys sorted; it and the rest of
        // the first chunk are read strictly.
        let item = parse_line(501, &exact_lines[500]).unwrap().unwrap();
        exact_lines[500] = serde_json::to_value(&item).unwrap().to_string();
        let text = exact_lines.join("\n");

        let keys = Fingerprints::default();
        let mut parsed = parsed_lines(text.as_bytes(), keys.clone());
        let mut hashed = Vec::new();
        while let Some(chunk) = parsed.next_chunk().await {
            assert_eq!(chunk.json.len(), chunk.lines.len());
            for ((line, _, read), json) in chunk.lines.iter().zip(&chunk.json) {
                let strict = parse_line(*line, &exact_lines[*line as usize - 1]).unwrap();
                assert_eq!(read.as_ref().unwrap(), &strict, "line {line}");
                if let Some(json) = json {
                    let written = serde_json::to_vec(&strict.unwrap()).unwrap();
                    assert_eq!(*json, keys.json(&written), "line {line}");
                    hashed.push(*line);
                }
            }
        }
        let expected: Vec<u64> = (1..=500)
            .chain(CHUNK_LINES as u64 + 1..=exact_lines.len() as u64)
            .collect();
        assert_eq!(hashed, expected);
    }

    #[tokio::test]
    async fn lines_a_check_passed_read_back_as_the_check_read_them() {
        let text = varied_text(CHUNK_LINES * 2 + 300);
        let (strict, fingerprints) = check(&text).await;
        for (line, _, r) in &strict {
            assert!(r.is_ok(), "line {line} is valid: {r:?}");
        }
        let plain = collect(checked_lines(text.as_bytes(), fingerprints)).await;
        assert_eq!(items(&plain), items(&strict));
        // Line 3 is item 1 (a workflow) with its id given twice.
        let Some(Some(twice)) = plain
            .iter()
            .find(|(l, ..)| *l == 3)
            .map(|(.., r)| r.as_ref().unwrap())
        else {
            panic!("line 3 holds an item");
        };
        assert_eq!(twice.key(), "w1", "the last of a key given twice");
    }

    #[tokio::test]
    async fn a_line_changed_after_the_check_stops_the_read_at_its_chunk() {
        let text = varied_text(CHUNK_LINES * 3);
        let (_, fingerprints) = check(&text).await;
        let changed = text.replacen("user2400", "user2499", 1);
        assert_ne!(changed, text);
        let read = collect(checked_lines(changed.as_bytes(), fingerprints.clone())).await;
        // The first two chunks (lines 1-2000), then the refusal of the third.
        let (good, rest) = read.split_at(2 * CHUNK_LINES);
        assert!(good.iter().all(|(_, _, r)| r.is_ok()));
        let error = rest[0].2.as_ref().unwrap_err().to_string();
        assert!(
            error.contains("lines 2001-3000") && error.contains("changed"),
            "{error}"
        );

        // Cut short at the end of a chunk: every line read, then the refusal.
        let cut: String = text.lines().take(2_000).map(|l| format!("{l}\n")).collect();
        let read = collect(checked_lines(cut.as_bytes(), fingerprints.clone())).await;
        assert_eq!(read.len(), 2_001);
        assert!(read[..2_000].iter().all(|(_, _, r)| r.is_ok()));
        let error = read[2_000].2.as_ref().unwrap_err().to_string();
        assert!(
            error.contains("ends after line 2000") && error.contains("changed"),
            "{error}"
        );

        // Added to: the last chunk is not the one checked.
        let longer = format!("{text}{}\n", profile_line(99_999));
        let read = collect(checked_lines(longer.as_bytes(), fingerprints)).await;
        let error = read.last().unwrap().2.as_ref().unwrap_err().to_string();
        assert!(error.contains("lines 3001-3002"), "{error}");
    }
}
