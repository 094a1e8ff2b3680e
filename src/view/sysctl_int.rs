//! How procfs takes an integer written to a one-integer sysctl (`proc_dointvec_minmax`,
//! `kernel/sysctl.c`), for the sysctls the view answers itself (`ns_last_pid`): what a
//! writer gets back must be what the kernel gives it, since shells and restore tools
//! write these files as they please (`echo 70 > …`, `printf 0x46`, a vector `70 80`).
//!
//! The kernel skips leading white space, reads one number in C's bases (`0x1f`, `010`
//! octal, decimal), optionally negative, that must be followed by white space (space,
//! tab, newline) or the end of the write, skips the white space after it, and ignores
//! the rest: the write returns only the bytes it took, and the writer's next write
//! comes at a position past 0, which the kernel's strict mode (`kernel.sysctl_writes_strict`,
//! 1 by default) ignores whole.

use super::Errno;

/// The longest number procfs reads (its `TMPBUFLEN` less one): a longer run of digits
/// may be two numbers, so it is refused.
const LONGEST: usize = 21;

/// What the kernel counts as white space before and after the number (`isspace` of
/// its own `ctype`, which takes the non-breaking space too).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0xa0)
}

/// What may follow the number (`proc_wspace_sep`).
fn is_separator(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n')
}

/// The integer a write of `data` at offset 0 sets, kept within `min..=max`, and how many
/// bytes of `data` the kernel takes (what the write returns). `EINVAL` as the kernel
/// refuses: no number, a malformed or out-of-range one.
pub fn parse(data: &[u8], min: i64, max: i64) -> Result<(i64, usize), Errno> {
    let skip = |from: usize| from + data[from..].iter().take_while(|&&b| is_space(b)).count();
    let start = skip(0);
    if start == data.len() {
        return Err(Errno::EINVAL);
    }
    let text = &data[start..data.len().min(start + LONGEST)];
    let negative = text[0] == b'-' && data.len() - start > 1;
    let digits = &text[usize::from(negative)..];
    if !digits.first().is_some_and(u8::is_ascii_digit) {
        return Err(Errno::EINVAL);
    }
    let (magnitude, used) = c_number(digits).ok_or(Errno::EINVAL)?;
    let len = usize::from(negative) + used;
    if len == LONGEST {
        return Err(Errno::EINVAL);
    }
    let after = start + len;
    if after < data.len() && !is_separator(data[after]) {
        return Err(Errno::EINVAL);
    }
    // The kernel's int conversion: at most INT_MAX, or INT_MAX + 1 negated.
    let value = match negative {
        false if magnitude <= i32::MAX as u64 => magnitude as i64,
        true if magnitude <= i32::MAX as u64 + 1 => -(magnitude as i64),
        _ => return Err(Errno::EINVAL),
    };
    if !(min..=max).contains(&value) {
        return Err(Errno::EINVAL);
    }
    Ok((value, skip(after)))
}

/// A number in C's bases at the start of `s` (which starts with a digit), as the
/// kernel's `strtoul` reads it: `0x` followed by a hex digit is hexadecimal, another
/// leading `0` octal; its value and the bytes it took, or `None` past `u64`.
fn c_number(s: &[u8]) -> Option<(u64, usize)> {
    let (radix, skip) = match s {
        [b'0', x, d, ..] if x.eq_ignore_ascii_case(&b'x') && d.is_ascii_hexdigit() => (16, 2),
        [b'0', ..] => (8, 0),
        _ => (10, 0),
    };
    let mut value: u64 = 0;
    let mut used = skip;
    for &b in &s[skip..] {
        let Some(d) = (b as char).to_digit(radix) else {
            break;
        };
        value = value
            .checked_mul(u64::from(radix))?
            .checked_add(u64::from(d))?;
        used += 1;
    }
    Some((value, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each write and what the kernel's `ns_last_pid` (min 0, max 4 Mi) answered on
    /// Linux 6.18: the value and the bytes taken, or `EINVAL`.
    #[test]
    fn as_the_kernel_takes_ns_last_pid() {
        let max = 4 * 1024 * 1024;
        let taken: &[(&[u8], i64, usize)] = &[
            (b"50", 50, 2),
            (b"50\n", 50, 3),
            (b"0x20", 32, 4),
            (b"0X1f", 31, 4),
            (b"010", 8, 3),
            (b"00012", 10, 5),
            (b" \t 33", 33, 5),
            (b"33\n\n", 33, 4),
            (b"-0", 0, 2),
            (b"0", 0, 1),
            (b"1 ", 1, 2),
            (b"2\t", 2, 2),
            (b"70 80\n", 70, 3),
            (b"12\n34", 12, 3),
            (b"4194304", 4194304, 7),
        ];
        for &(data, value, len) in taken {
            assert_eq!(parse(data, 0, max), Ok((value, len)), "{data:?}");
        }
        let refused: &[&[u8]] = &[
            b"+5",
            b"",
            b"\n",
            b"  ",
            b"-1",
            b"99999999999999999999",
            b"3\x00",
            b"3\x00junk",
            b"71,72",
            b"7x",
            b"4194305",
            b"1e3",
            b"08",
            b"-",
            b"0x",
            b"000000000000000000012",
        ];
        for &data in refused {
            assert_eq!(parse(data, 0, max), Err(Errno::EINVAL), "{data:?}");
        }
    }

    #[test]
    fn the_kernel_int_range_and_a_number_at_the_end_of_the_longest_read() {
        assert_eq!(parse(b"-2147483648", i64::MIN, 0), Ok((-2147483648, 11)));
        assert_eq!(parse(b"2147483648", 0, i64::MAX), Err(Errno::EINVAL));
        // 20 characters fit; the kernel reads 21 at most and refuses a number that long.
        assert_eq!(parse(b"00000000000000000012", 0, 100), Ok((10, 20)));
    }
}
