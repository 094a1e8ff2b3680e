//! `/proc/cpuinfo` of a VPS: the blocks of its visible CPUs only, renumbered from 0.
//!
//! The file is a sequence of paragraphs separated by blank lines. A paragraph whose
//! first line is `processor<tabs>: N` is CPU N's block (x86, arm64, riscv, ppc); it is
//! kept when N is visible, with N replaced by its rank among the visible CPUs, and
//! dropped with its blank line otherwise. Other paragraphs (arm's trailing
//! "Hardware/Revision/Serial", s390's header) are kept as they are. The rest of each
//! block is the host's, but for the two counts of a package (x86): `siblings` (the
//! package's logical CPUs) and `cpu cores` (its distinct `core id`s) count the VPS's
//! CPUs only, as on a machine that had just those and as sysfs's topology shows them
//! to the VPS ([`crate::placement::cpu_topology`]); the hardware's ids (`physical id`,
//! `core id`, `apicid`) stay. LXCFS leaves the counts at the host's.

use super::cpus::CpuSet;
use super::ResError;

const FILE: &str = "cpuinfo";

/// The CPU numbers of the host's blocks, in file order (the CPUs online when it was
/// read).
pub fn processors(host: &[u8]) -> Result<CpuSet, ResError> {
    let text = utf8(host)?;
    let mut cpus = Vec::new();
    for para in paragraphs(text) {
        if let Some((_, n)) = processor_line(para)? {
            cpus.push(n);
        }
    }
    Ok(CpuSet::from_cpus(cpus))
}

/// Keeps the blocks of `visible` (host numbering), renumbered 0, 1, … in order, with
/// their packages' counts cut to them.
pub fn render(host: &[u8], visible: &CpuSet) -> Result<Vec<u8>, ResError> {
    let text = utf8(host)?;
    let paras = paragraphs(text);
    // The (physical id, core id) of every visible block, for the packages' counts.
    let mut placed: Vec<(Option<&str>, Option<&str>)> = Vec::new();
    for para in &paras {
        if let Some((_, n)) = processor_line(para)? {
            if visible.contains(n) {
                placed.push((value(para, "physical id"), value(para, "core id")));
            }
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut rank = 0u32;
    for para in paras {
        match processor_line(para)? {
            None => out.push_str(para),
            Some((prefix_len, n)) => {
                if !visible.contains(n) {
                    continue;
                }
                let first_end = para.find('\n').unwrap_or(para.len());
                out.push_str(&para[..prefix_len]);
                out.push_str(&rank.to_string());
                // Kept blocks come in the order `placed` was made in.
                let package = placed.get(rank as usize).and_then(|(p, _)| *p);
                let in_package = || placed.iter().filter(move |(p, _)| *p == package);
                let siblings = in_package().count();
                let mut cores: Vec<Option<&str>> = in_package().map(|(_, c)| *c).collect();
                cores.sort_unstable();
                cores.dedup();
                for line in para[first_end..].split_inclusive('\n') {
                    let count = match key(line) {
                        Some("siblings") if package.is_some() => Some(siblings),
                        Some("cpu cores") if package.is_some() => Some(cores.len()),
                        _ => None,
                    };
                    match (count, line.find(':')) {
                        (Some(c), Some(colon)) => {
                            out.push_str(&line[..=colon]);
                            out.push_str(&format!(" {c}\n"));
                        }
                        _ => out.push_str(line),
                    }
                }
                rank += 1;
            }
        }
    }
    Ok(out.into_bytes())
}

/// The key of a `key<tabs>: value` line ("cpu cores").
fn key(line: &str) -> Option<&str> {
    line.split_once(':').map(|(k, _)| k.trim_end())
}

/// The value of line `name` in a block.
fn value<'a>(para: &'a str, name: &str) -> Option<&'a str> {
    para.lines()
        .find(|l| key(l) == Some(name))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim())
}

fn utf8(host: &[u8]) -> Result<&str, ResError> {
    std::str::from_utf8(host).map_err(|_| ResError::Malformed {
        file: FILE,
        what: "not UTF-8".into(),
    })
}

/// Splits into paragraphs, each with the blank lines that follow it.
fn paragraphs(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev_blank = false;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let blank = line.trim().is_empty();
        if !blank && prev_blank {
            out.push(&text[start..pos]);
            start = pos;
        }
        prev_blank = blank;
        pos += line.len();
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// If the paragraph starts with "processor<ws>: N", the length of the text before N
/// and N.
fn processor_line(para: &str) -> Result<Option<(usize, u32)>, ResError> {
    let first = para.lines().next().unwrap_or("");
    let Some(rest) = first.strip_prefix("processor") else {
        return Ok(None);
    };
    let Some((gap, value)) = rest.split_once(':') else {
        return Ok(None);
    };
    if !gap.chars().all(|c| c == ' ' || c == '\t') {
        return Ok(None); // s390's "processor 0: version = …"
    }
    let digits = value.trim_start();
    let n = digits.trim_end().parse().map_err(|_| ResError::Malformed {
        file: FILE,
        what: format!("bad processor line {first:?}"),
    })?;
    Ok(Some((first.len() - digits.len(), n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const X86: &[u8] = include_bytes!("testdata/cpuinfo.x86");
    const ARM: &[u8] = include_bytes!("testdata/cpuinfo.arm64");

    fn procs(text: &[u8]) -> Vec<String> {
        std::str::from_utf8(text)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("processor"))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn all_visible_is_the_host_file() {
        let all = processors(X86).unwrap();
        assert_eq!(all.cpus(), &[0, 1]);
        assert_eq!(render(X86, &all).unwrap(), X86);
        let all = processors(ARM).unwrap();
        assert_eq!(all.cpus(), &[0, 1, 2, 3]);
        assert_eq!(render(ARM, &all).unwrap(), ARM);
    }

    #[test]
    fn x86_keeps_one_block_renumbered() {
        let out = render(X86, &CpuSet::from_cpus([1])).unwrap();
        assert_eq!(procs(&out), vec!["processor\t: 0"]);
        let text = String::from_utf8(out).unwrap();
        // The whole block of CPU 1 (its apicid is 1), ending with one blank line.
        assert!(text.contains("apicid\t\t: 1\n"));
        // A package of one CPU: one sibling, one core (its core id stays the host's).
        assert!(text.contains("siblings\t: 1\n"), "{text}");
        assert!(text.contains("cpu cores\t: 1\n"), "{text}");
        assert!(text.contains("core id\t\t: 1\n"), "{text}");
        assert!(text.ends_with("power management:\n\n"));
        assert_eq!(text.matches("vendor_id").count(), 1);
    }

    #[test]
    fn package_counts_are_cut_to_the_visible_cpus() {
        // Two packages: CPUs 0 and 1 are the two threads of core 0 of package 0, CPUs 2
        // and 3 cores 0 and 1 of package 1.
        let block = |n: u32, pkg: u32, core: u32| {
            format!(
                "processor\t: {n}\nphysical id\t: {pkg}\nsiblings\t: 2\n\
                 core id\t\t: {core}\ncpu cores\t: 2\n\n"
            )
        };
        let host = [
            block(0, 0, 0),
            block(1, 0, 0),
            block(2, 1, 0),
            block(3, 1, 1),
        ]
        .concat();
        let out = render(host.as_bytes(), &CpuSet::from_cpus([0, 1, 3])).unwrap();
        let counts: Vec<String> = String::from_utf8(out)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("siblings") || l.starts_with("cpu cores"))
            .map(|l| l.split(':').nth(1).unwrap().trim().to_string())
            .collect();
        // Package 0: two threads of one core; package 1: one CPU.
        assert_eq!(counts, ["2", "1", "2", "1", "1", "1"]);
    }

    #[test]
    fn arm_keeps_its_trailer() {
        let out = render(ARM, &CpuSet::from_cpus([1, 3])).unwrap();
        assert_eq!(procs(&out), vec!["processor\t: 0", "processor\t: 1"]);
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("Model\t\t: Raspberry Pi 4 Model B Rev 1.4\n"));
        assert_eq!(text.matches("\n\nHardware").count(), 1);
        assert_eq!(text.matches("BogoMIPS").count(), 2);
    }

    #[test]
    fn odd_input() {
        assert!(render(b"processor\t: x\n", &CpuSet::from_cpus([0])).is_err());
        assert!(render(&[0xff], &CpuSet::default()).is_err());
        // s390 style: no per-CPU paragraphs recognized, kept whole.
        let s390 = b"vendor_id       : IBM/S390\nprocessor 0: version = 00\n";
        assert_eq!(render(s390, &CpuSet::from_cpus([0])).unwrap(), s390);
        assert_eq!(render(b"", &CpuSet::default()).unwrap(), b"");
    }
}
