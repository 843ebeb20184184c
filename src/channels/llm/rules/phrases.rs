//! The format of the responder's word lists (`*.txt` beside each module): named sections
//! of one phrase a line, so a list can be read and edited without touching code.
//!
//! Owns: parsing one file into its sections and handing each section to the module that
//! reads it, by name. Must not: know what any list means, or change a phrase (no case
//! folding, no reordering): a phrase is matched exactly as written, in file order.
//!
//! ```text
//! # A comment: lines starting with '#', and blank lines, are ignored.
//! [section name]
//! one phrase a line
//! ```
//!
//! The files are compiled in (`include_str!`) and parsed on first use. A malformed file is
//! a programming error, so parsing panics with the file and section named; each module's
//! `the_word_lists_parse` test forces the parse, so `cargo test` finds it first.

/// One file's sections, in file order. Each is taken out by the module that owns it, and
/// [`Sections::finish`] refuses a file with a section nobody took (a misspelt name).
pub(super) struct Sections {
    file: &'static str,
    sections: Vec<(&'static str, Vec<&'static str>)>,
}

impl Sections {
    pub(super) fn parse(file: &'static str, data: &'static str) -> Self {
        let mut sections: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
        for line in data.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                assert!(
                    sections.iter().all(|(n, _)| *n != name),
                    "{file}: section [{name}] appears twice"
                );
                sections.push((name, Vec::new()));
                continue;
            }
            match sections.last_mut() {
                Some((_, phrases)) => phrases.push(line),
                None => panic!("{file}: {line:?} comes before any [section]"),
            }
        }
        for (name, phrases) in &sections {
            assert!(!phrases.is_empty(), "{file}: section [{name}] is empty");
        }
        Self { file, sections }
    }

    /// The phrases of section `name`, which must be there.
    pub(super) fn take(&mut self, name: &str) -> Vec<&'static str> {
        let Some(i) = self.sections.iter().position(|(n, _)| *n == name) else {
            panic!("{}: no section [{name}]", self.file);
        };
        self.sections.remove(i).1
    }

    /// Every section named `PREFIX REST`, as `(REST, phrases)`, in file order; at least one.
    pub(super) fn take_prefixed(&mut self, prefix: &str) -> Vec<(&'static str, Vec<&'static str>)> {
        let (taken, kept) = std::mem::take(&mut self.sections)
            .into_iter()
            .partition::<Vec<_>, _>(|(n, _)| n.starts_with(prefix));
        self.sections = kept;
        assert!(!taken.is_empty(), "{}: no section [{prefix}...]", self.file);
        taken
            .into_iter()
            .map(|(n, phrases)| (&n[prefix.len()..], phrases))
            .collect()
    }

    /// Ends the reading of a file: every section must have been taken.
    pub(super) fn finish(self) {
        let left: Vec<&str> = self.sections.iter().map(|(n, _)| *n).collect();
        assert!(left.is_empty(), "{}: unused sections {left:?}", self.file);
    }
}

/// Checks the form every phrase file keeps: lowercase, single-spaced, no stray blanks. Text
/// is lowercased and single-spaced before it is matched, so any other phrase never matches.
#[cfg(test)]
pub(super) fn assert_plain_phrases(file: &str, data: &str) {
    for line in data.lines() {
        if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        assert_eq!(line, line.trim(), "{file}: {line:?} has blanks around it");
        assert!(!line.contains("  "), "{file}: {line:?} has a double space");
        assert_eq!(
            line,
            line.to_lowercase(),
            "{file}: {line:?} is not lowercase"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_read_in_order_with_comments_and_blanks_skipped() {
        let mut sections = Sections::parse(
            "test.txt",
            "# words\n[one]\nalpha\n\n  beta gamma  \n[q: first]\nx\n[q: second]\ny\nz\n",
        );
        assert_eq!(sections.take("one"), vec!["alpha", "beta gamma"]);
        assert_eq!(
            sections.take_prefixed("q: "),
            vec![("first", vec!["x"]), ("second", vec!["y", "z"])]
        );
        sections.finish();
    }

    #[test]
    #[should_panic(expected = "test.txt: unused sections [\"spare\"]")]
    fn a_section_nobody_reads_is_refused() {
        let mut sections = Sections::parse("test.txt", "[used]\na\n[spare]\nb\n");
        sections.take("used");
        sections.finish();
    }

    #[test]
    #[should_panic(expected = "test.txt: no section [missing]")]
    fn a_missing_section_is_refused() {
        Sections::parse("test.txt", "[here]\na\n").take("missing");
    }

    #[test]
    #[should_panic(expected = "test.txt: \"stray\" comes before any [section]")]
    fn a_phrase_outside_a_section_is_refused() {
        Sections::parse("test.txt", "stray\n[here]\na\n");
    }

    #[test]
    #[should_panic(expected = "test.txt: section [empty] is empty")]
    fn an_empty_section_is_refused() {
        Sections::parse("test.txt", "[empty]\n[here]\na\n");
    }
}
