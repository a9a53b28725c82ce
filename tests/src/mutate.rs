//! Bent copies of valid requests, for tests that send them to the real
//! daemon: seeded, so that a failure names the seed that replays it.

use serde_json::{Value, json};

/// SplitMix64: small, seedable, and enough to pick mutations.
pub struct Dice(pub u64);

impl Dice {
    pub fn roll(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Dice from `PROVII_MUTATION_SEED` if set (to replay a failure), a
    /// random seed otherwise; the seed is printed and returned, for the
    /// failure messages.
    pub fn from_env() -> (Self, u64) {
        let seed = std::env::var("PROVII_MUTATION_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(rand::random::<u64>);
        eprintln!("PROVII_MUTATION_SEED={seed}");
        (Self(seed), seed)
    }

    /// Uniform in `0..n` (n > 0; the bias is irrelevant here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.roll() % n as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Values that stress a JSON reader or a field's range and type.
pub fn odd_value(dice: &mut Dice) -> Value {
    let deep = (0..200).fold(json!(0), |v, _| json!([v]));
    let values = [
        Value::Null,
        json!(true),
        json!(-1),
        json!(0),
        json!(1.5),
        json!(1e308),
        json!(-1e308),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(""),
        json!("\u{0}"),
        json!("é\u{202e}"),
        json!("0".repeat(64)),
        json!("A".repeat(4096)),
        json!([]),
        json!({}),
        deep,
    ];
    dice.pick(&values).clone()
}

/// Bytes and tokens that break JSON's grammar in different places.
pub const ODD_TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"-0",
    b"1e999",
    b"99999999999999999999999",
    b"\"\\ud800\"",
    b"\"\\u0000\"",
    b"\xff\xfe",
    b"\xc3",
    b"\x00",
    b" \t\r\n",
    b"/*x*/",
];

/// Every path to a value inside `v` (object keys and array indices).
pub fn paths(v: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                at.push(k.clone());
                paths(child, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                at.push(i.to_string());
                paths(child, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

pub fn at_path<'a>(v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, step| match v {
        Value::Object(m) => m.get_mut(step),
        Value::Array(a) => step.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
        _ => None,
    })
}

/// A value of the same type, one step away: a number off by one, a string
/// with one character changed. These pass the reader and meet the checks
/// behind it (signatures, HMACs, ranges).
pub fn nudge(v: &Value, dice: &mut Dice) -> Value {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(|i| json!(i.wrapping_add(if dice.below(2) == 0 { 1 } else { -1 })))
            .unwrap_or_else(|| v.clone()),
        Value::String(s) if !s.is_empty() => {
            let mut chars: Vec<char> = s.chars().collect();
            let i = dice.below(chars.len());
            chars[i] = *dice.pick(&['0', '9', 'a', 'f', 'g', 'A', '-', '_', '=', '+']);
            json!(chars.into_iter().collect::<String>())
        }
        _ => v.clone(),
    }
}

/// One structural change to a copy of `body`: a value nudged or swapped, a
/// key dropped or added.
pub fn mutate_value(body: &Value, dice: &mut Dice) -> Value {
    let mut v = body.clone();
    let mut all = Vec::new();
    paths(&v, &mut Vec::new(), &mut all);
    let path = dice.pick(&all).clone();
    match dice.below(4) {
        3 => {
            if let Some(slot) = at_path(&mut v, &path) {
                *slot = nudge(slot, dice);
            }
        }
        0 => {
            if let Some(slot) = at_path(&mut v, &path) {
                *slot = odd_value(dice);
            }
        }
        1 => {
            if let Some((last, parent)) = path.split_last()
                && let Some(Value::Object(m)) = at_path(&mut v, parent)
            {
                m.remove(last);
            }
        }
        _ => {
            let value = odd_value(dice);
            // Into the object at `path`, or the top level if that is not one.
            let at_object = matches!(at_path(&mut v, &path), Some(Value::Object(_)));
            let target = if at_object {
                at_path(&mut v, &path)
            } else {
                Some(&mut v)
            };
            if let Some(Value::Object(m)) = target {
                m.insert("unexpected".into(), value);
            }
        }
    }
    v
}

/// One change to the text itself.
pub fn mutate_bytes(text: &mut Vec<u8>, dice: &mut Dice) {
    let len = text.len().max(1);
    let at = dice.below(len).min(text.len());
    match dice.below(6) {
        0 => {
            if let Some(b) = text.get_mut(at) {
                *b ^= 1 << dice.below(8);
            }
        }
        1 => {
            let end = (at + 1 + dice.below(8)).min(text.len());
            text.drain(at..end);
        }
        2 => {
            let end = (at + 1 + dice.below(16)).min(text.len());
            let span = text[at..end].to_vec();
            let to = dice.below(text.len() + 1);
            text.splice(to..to, span);
        }
        3 => text.truncate(at),
        4 => {
            let token = dice.pick(ODD_TOKENS);
            text.splice(at..at, token.iter().copied());
        }
        _ => {
            // The first key given twice: taking the first value or the
            // second would be a choice; the daemon must refuse instead.
            if let Some(key) = first_key(text) {
                let open = key.start - 2;
                let twice = [b"\"", &text[key], b"\":1,"].concat();
                text.splice(open + 1..open + 1, twice);
            }
        }
    }
}

/// Where the first key of the first object is, without its quotes.
fn first_key(text: &[u8]) -> Option<std::ops::Range<usize>> {
    let open = text.windows(2).position(|w| w == b"{\"")?;
    let start = open + 2;
    let len = text[start..].iter().position(|b| *b == b'"')?;
    Some(start..start + len)
}

/// A bent copy of `body`: one to three changes, to its structure or text.
/// One of them, laying the JSON out with indents and newlines, keeps its
/// meaning, so some bent requests must still be served.
pub fn mutate(body: &Value, dice: &mut Dice) -> Vec<u8> {
    let mut v = body.clone();
    let mut text = None::<Vec<u8>>;
    for _ in 0..1 + dice.below(3) {
        match (&mut text, dice.below(3)) {
            (None, 0) => v = mutate_value(&v, dice),
            (None, 1) => {
                let mut t = v.to_string().into_bytes();
                mutate_bytes(&mut t, dice);
                text = Some(t);
            }
            (None, _) => text = serde_json::to_vec_pretty(&v).ok(),
            (Some(t), _) => mutate_bytes(t, dice),
        }
    }
    text.unwrap_or_else(|| v.to_string().into_bytes())
}
