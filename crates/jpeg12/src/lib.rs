//! 12-bit JPEG: ISO 10918-1 extended sequential DCT, Huffman coded, one component.
//!
//! DICOM's JPEG Extended transfer syntax (1.2.840.10008.1.2.4.51, processes 2 and 4)
//! carries 12-bit samples; older CR/DX radiography archives are full of it. No
//! maintained pure-Rust decoder reads it: `jpeg-decoder` (dicom-rs's JPEG backend) and
//! `zune-jpeg` refuse a DCT sample precision other than 8. The C libraries that do
//! (libjpeg built for 12 bits, libjpeg-turbo 3, the ISO reference libjpeg behind
//! pylibjpeg) would make a C toolchain part of the default build for what is a few
//! hundred lines: the format is the baseline one with 12-bit samples, 16-bit
//! quantisation tables and up to four Huffman tables per class.
//!
//! What is decoded: SOF0/SOF1 with precision 12 and one component (greyscale, what
//! CR/DX files hold), one sequential scan, restart intervals. Colour 12-bit JPEG,
//! progressive (SOF2), arithmetic coding, hierarchical files and DNL are refused with
//! an error, never guessed at.
//!
//! The inverse DCT is libjpeg's `jpeg_idct_islow` (jidctint.c, the default of libjpeg
//! 6b, libjpeg-turbo and GDCM): 13-bit fixed-point constants, `PASS1_BITS` = 1 for
//! 12-bit samples, rounding descales, and the same range-limit table (out-of-range
//! values wrap through `RANGE_MASK` exactly as libjpeg's do). The arithmetic is done in
//! i64: identical to libjpeg's 32-bit arithmetic wherever that does not overflow (every
//! valid stream), and never a panic where it would (corrupt ones). Checked against
//! libjpeg-turbo 3.1 and pydicom's decoders in `tests/run/dicom.rs` (see
//! `tests/fixtures/dicom/README.md`).
//!
//! As libjpeg does, a scan whose Ss/Se fields are not 0/63 is decoded as the full
//! sequential scan (pydicom's `JPEG-lossy.dcm` has Se = 0). Unlike libjpeg, which fills
//! missing data with zeros and warns, entropy-coded data that ends before the last
//! block is an error: a truncated file must not become a different image.

use std::fmt;

/// Sample precision this decoder reads.
pub const PRECISION: u8 = 12;
const MAX_SAMPLE: i32 = (1 << PRECISION) - 1;
const CENTER_SAMPLE: i32 = 1 << (PRECISION - 1);
/// jidctint.c: `CONST_BITS` 13, `PASS1_BITS` 1 when `BITS_IN_JSAMPLE` is 12.
const CONST_BITS: u32 = 13;
const PASS1_BITS: u32 = 1;
/// jdmaster.c: the post-IDCT range-limit table is indexed modulo 4 * (MAXJSAMPLE + 1).
const RANGE_MASK: i32 = 4 * (MAX_SAMPLE + 1) - 1;

/// Why a 12-bit JPEG stream could not be decoded (codec words only: safe to show).
#[derive(Debug, Clone, PartialEq)]
pub enum Jpeg12Error {
    Unsupported(String),
    Corrupt(String),
}

impl fmt::Display for Jpeg12Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Jpeg12Error::Unsupported(m) => write!(f, "12-bit JPEG: not supported: {m}"),
            Jpeg12Error::Corrupt(m) => write!(f, "12-bit JPEG: corrupt: {m}"),
        }
    }
}

fn corrupt<T>(m: impl Into<String>) -> Result<T, Jpeg12Error> {
    Err(Jpeg12Error::Corrupt(m.into()))
}

/// The frame header of a JPEG codestream (also JPEG-LS's SOF55).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameHeader {
    /// The SOF marker's second byte (C0 baseline, C1 extended, C3 lossless, F7 JPEG-LS).
    pub marker: u8,
    pub precision: u8,
    pub width: u16,
    pub height: u16,
    pub components: u8,
}

/// SOF markers: C0-CF but DHT (C4), JPG (C8) and DAC (CC); and JPEG-LS's SOF55 (F7).
fn is_sof(m: u8) -> bool {
    matches!(m, 0xC0..=0xCF if m != 0xC4 && m != 0xC8 && m != 0xCC) || m == 0xF7
}

/// The first frame header of a JPEG or JPEG-LS codestream, reading only marker
/// segments before it. `None` when the bytes do not start with SOI or end first.
pub fn frame_header(b: &[u8]) -> Option<FrameHeader> {
    if b.len() < 4 || b[0] != 0xFF || b[1] != 0xD8 {
        return None;
    }
    let mut pos = 2;
    loop {
        while pos < b.len() && b[pos] == 0xFF && b.get(pos + 1) == Some(&0xFF) {
            pos += 1; // fill bytes
        }
        if pos + 4 > b.len() || b[pos] != 0xFF {
            return None;
        }
        let m = b[pos + 1];
        let len = u16::from_be_bytes([b[pos + 2], b[pos + 3]]) as usize;
        if is_sof(m) {
            let s = b.get(pos + 4..pos + 10)?;
            return Some(FrameHeader {
                marker: m,
                precision: s[0],
                height: u16::from_be_bytes([s[1], s[2]]),
                width: u16::from_be_bytes([s[3], s[4]]),
                components: s[5],
            });
        }
        if m == 0xDA || m == 0xD9 || len < 2 {
            return None;
        }
        pos += 2 + len;
    }
}

/// Natural (row-major) index of zig-zag position k; positions past 63 (a corrupt run
/// length) land on 63, as libjpeg's `jpeg_natural_order` padding does.
const NATURAL_ORDER: [usize; 80] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
    28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
    47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
];

/// Bits of code looked up in one step; longer codes are decoded per Annex F.2.2.3.
const LOOKUP_BITS: u32 = 9;

/// A Huffman table (Annex C) with a lookup for short codes.
#[derive(Clone)]
struct Huffman {
    /// For each `LOOKUP_BITS`-bit prefix: `(length << 8) | value`, 0 when the code is longer.
    lookup: Vec<u16>,
    /// Largest code of each length (-1: none), and the offset from a code to its value.
    max_code: [i32; 17],
    val_offset: [i32; 17],
    values: Vec<u8>,
}

impl Huffman {
    fn new(counts: &[u8; 16], values: Vec<u8>) -> Result<Huffman, Jpeg12Error> {
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        if total != values.len() || total > 256 {
            return corrupt("Huffman table sizes do not add up");
        }
        let mut lookup = vec![0u16; 1 << LOOKUP_BITS];
        let mut max_code = [-1i32; 17];
        let mut val_offset = [0i32; 17];
        let (mut code, mut k) = (0u32, 0usize);
        for len in 1..=16u32 {
            let n = counts[len as usize - 1] as usize;
            if n > 0 {
                val_offset[len as usize] = k as i32 - code as i32;
                for _ in 0..n {
                    if code >= 1 << len {
                        return corrupt("Huffman table has more codes than bits");
                    }
                    if len <= LOOKUP_BITS {
                        let shift = LOOKUP_BITS - len;
                        for fill in 0..(1u32 << shift) {
                            lookup[((code << shift) | fill) as usize] = ((len as u16) << 8) | values[k] as u16;
                        }
                    }
                    code += 1;
                    k += 1;
                }
                max_code[len as usize] = code as i32 - 1;
            }
            code <<= 1;
        }
        Ok(Huffman { lookup, max_code, val_offset, values })
    }

    fn decode(&self, bits: &mut Bits<'_>) -> Result<u8, Jpeg12Error> {
        let peek = bits.peek16();
        let e = self.lookup[(peek >> (16 - LOOKUP_BITS)) as usize];
        if e != 0 {
            bits.consume((e >> 8) as u32);
            return Ok(e as u8);
        }
        for len in LOOKUP_BITS + 1..=16 {
            let code = (peek >> (16 - len)) as i32;
            if code <= self.max_code[len as usize] {
                bits.consume(len);
                let i = code + self.val_offset[len as usize];
                return self.values.get(i as usize).copied().map_or_else(|| corrupt("bad Huffman code"), Ok);
            }
        }
        corrupt("bad Huffman code")
    }
}

/// Entropy-coded bits, with 0xFF00 unstuffed. At a marker (or the end) it feeds zeros,
/// as libjpeg does, and remembers whether any of them was consumed.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    /// Valid bits in `acc`, from the top; the last `fake` of them are fill, not data.
    n: u32,
    fake: u32,
    at_marker: bool,
    ran_out: bool,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        Bits { data, pos, acc: 0, n: 0, fake: 0, at_marker: false, ran_out: false }
    }

    fn fill(&mut self) {
        while self.n <= 56 {
            let byte = if self.at_marker || self.pos >= self.data.len() {
                self.fake += 8;
                0
            } else if self.data[self.pos] == 0xFF {
                if self.data.get(self.pos + 1) == Some(&0x00) {
                    self.pos += 2;
                    0xFF
                } else {
                    self.at_marker = true;
                    self.fake += 8;
                    0
                }
            } else {
                self.pos += 1;
                self.data[self.pos - 1]
            };
            self.acc |= (byte as u64) << (56 - self.n);
            self.n += 8;
        }
    }

    fn peek16(&mut self) -> u32 {
        if self.n < 16 {
            self.fill();
        }
        (self.acc >> 48) as u32
    }

    fn consume(&mut self, k: u32) {
        if self.n < k {
            self.fill();
        }
        self.acc <<= k;
        self.n -= k;
        if self.n < self.fake {
            self.ran_out = true;
            self.fake = self.n;
        }
    }

    fn receive(&mut self, k: u32) -> i32 {
        if k == 0 {
            return 0;
        }
        if self.n < k {
            self.fill();
        }
        let v = (self.acc >> (64 - k)) as i32;
        self.consume(k);
        v
    }

    /// After a restart interval: drop the partial byte and read the RSTn marker.
    fn restart(&mut self, expected: u8) -> Result<(), Jpeg12Error> {
        self.acc = 0;
        self.n = 0;
        self.fake = 0;
        self.at_marker = false;
        while self.pos + 1 < self.data.len() && self.data[self.pos] == 0xFF && self.data[self.pos + 1] == 0xFF {
            self.pos += 1;
        }
        match self.data.get(self.pos..self.pos + 2) {
            Some([0xFF, m]) if *m == 0xD0 + expected => {
                self.pos += 2;
                Ok(())
            }
            _ => corrupt("restart marker missing"),
        }
    }
}

/// Annex F.2.2.1 EXTEND.
fn extend(v: i32, t: u32) -> i32 {
    if t == 0 {
        0
    } else if v < 1 << (t - 1) {
        v - (1 << t) + 1
    } else {
        v
    }
}

/// libjpeg's post-IDCT range limit for 12-bit samples: `x` (the descaled IDCT output,
/// before adding CENTERJSAMPLE) masked by RANGE_MASK, then through the table jdmaster.c
/// builds: x + 2048 inside the sample range, 4095 above it, 0 below it.
fn range_limit(x: i64) -> u16 {
    let t = (x as i32) & RANGE_MASK;
    let full = MAX_SAMPLE + 1;
    (if t < full - CENTER_SAMPLE {
        t + CENTER_SAMPLE
    } else if t < 2 * full {
        MAX_SAMPLE
    } else if t < 4 * full - CENTER_SAMPLE {
        0
    } else {
        t - (4 * full - CENTER_SAMPLE)
    }) as u16
}

// jidctint.c's FIX(x) = round(x * 2^13).
const FIX_0_298631336: i64 = 2446;
const FIX_0_390180644: i64 = 3196;
const FIX_0_541196100: i64 = 4433;
const FIX_0_765366865: i64 = 6270;
const FIX_0_899976223: i64 = 7373;
const FIX_1_175875602: i64 = 9633;
const FIX_1_501321110: i64 = 12299;
const FIX_1_847759065: i64 = 15137;
const FIX_1_961570560: i64 = 16069;
const FIX_2_053119869: i64 = 16819;
const FIX_2_562915447: i64 = 20995;
const FIX_3_072711026: i64 = 25172;

fn descale(x: i64, n: u32) -> i64 {
    (x + (1 << (n - 1))) >> n
}

/// One 1-D pass of jpeg_idct_islow on `v[0..8]` (already dequantised, or the work
/// array), returning the 8 outputs before descaling.
fn idct_1d(v: [i64; 8]) -> [i64; 8] {
    // Even part.
    let (z2, z3) = (v[2], v[6]);
    let z1 = (z2 + z3) * FIX_0_541196100;
    let tmp2 = z1 - z3 * FIX_1_847759065;
    let tmp3 = z1 + z2 * FIX_0_765366865;
    let tmp0 = (v[0] + v[4]) << CONST_BITS;
    let tmp1 = (v[0] - v[4]) << CONST_BITS;
    let (tmp10, tmp13, tmp11, tmp12) = (tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2);
    // Odd part.
    let (t0, t1, t2, t3) = (v[7], v[5], v[3], v[1]);
    let (z1, z2, z3, z4) = (t0 + t3, t1 + t2, t0 + t2, t1 + t3);
    let z5 = (z3 + z4) * FIX_1_175875602;
    let (t0, t1, t2, t3) = (t0 * FIX_0_298631336, t1 * FIX_2_053119869, t2 * FIX_3_072711026, t3 * FIX_1_501321110);
    let (z1, z2) = (-z1 * FIX_0_899976223, -z2 * FIX_2_562915447);
    let z3 = -z3 * FIX_1_961570560 + z5;
    let z4 = -z4 * FIX_0_390180644 + z5;
    let (t0, t1, t2, t3) = (t0 + z1 + z3, t1 + z2 + z4, t2 + z2 + z3, t3 + z1 + z4);
    [tmp10 + t3, tmp11 + t2, tmp12 + t1, tmp13 + t0, tmp13 - t0, tmp12 - t1, tmp11 - t2, tmp10 - t3]
}

/// jpeg_idct_islow: dequantise `coef` (natural order) with `quant` and write the 8x8
/// block of samples into `out` rows of `stride`.
fn idct_block(coef: &[i32; 64], quant: &[u16; 64], out: &mut [u16], stride: usize) {
    let mut ws = [0i64; 64];
    for c in 0..8 {
        let v = std::array::from_fn(|r| coef[r * 8 + c] as i64 * quant[r * 8 + c] as i64);
        for (r, x) in idct_1d(v).into_iter().enumerate() {
            ws[r * 8 + c] = descale(x, CONST_BITS - PASS1_BITS);
        }
    }
    for r in 0..8 {
        let v = std::array::from_fn(|c| ws[r * 8 + c]);
        for (c, x) in idct_1d(v).into_iter().enumerate() {
            out[r * stride + c] = range_limit(descale(x, CONST_BITS + PASS1_BITS + 3));
        }
    }
}

/// Decodes a 12-bit greyscale JPEG that must be `width` x `height` (the DICOM header's
/// Columns x Rows, already within the pixel limit: nothing larger is allocated).
pub fn decode(b: &[u8], width: u32, height: u32) -> Result<Vec<u16>, Jpeg12Error> {
    if b.len() < 4 || b[..2] != [0xFF, 0xD8] {
        return corrupt("no start-of-image marker");
    }
    let mut t = Tables::default();
    let mut pos = 2;
    loop {
        let (m, seg, next) = segment(b, pos)?;
        match m {
            0xC0 | 0xC1 => t.frame = Some(frame_component(seg, width, height)?),
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return Err(Jpeg12Error::Unsupported(format!(
                    "coding process of marker FF{m:02X} (only extended sequential Huffman)"
                )));
            }
            0xC4 => t.read_huffman(seg)?,
            0xDB => t.read_quantisation(seg)?,
            0xDD => {
                let [hi, lo, ..] = *seg else { return corrupt("short restart interval") };
                t.restart_interval = u16::from_be_bytes([hi, lo]) as usize;
            }
            0xDC => return Err(Jpeg12Error::Unsupported("DNL marker".into())),
            0xDA => return t.scan(b, seg, next, width as usize, height as usize),
            0xD9 => return corrupt("end of image before any scan"),
            _ => {} // APPn, COM and the like
        }
        pos = next;
    }
}

/// The marker segment at `pos`: its marker, its contents and where the next one starts
/// (fill bytes skipped).
fn segment(b: &[u8], mut pos: usize) -> Result<(u8, &[u8], usize), Jpeg12Error> {
    while pos + 1 < b.len() && b[pos] == 0xFF && b[pos + 1] == 0xFF {
        pos += 1;
    }
    if pos + 4 > b.len() || b[pos] != 0xFF {
        return corrupt("marker segment expected");
    }
    let len = u16::from_be_bytes([b[pos + 2], b[pos + 3]]) as usize;
    let Some(seg) = b.get(pos + 4..pos + 2 + len).filter(|_| len >= 2) else {
        return corrupt("marker segment runs past the end");
    };
    Ok((b[pos + 1], seg, pos + 2 + len))
}

/// The frame's one component, `(component id, quantisation table)`, from a SOF0/SOF1
/// segment that must be a 12-bit greyscale `width` x `height` frame.
fn frame_component(seg: &[u8], width: u32, height: u32) -> Result<(u8, usize), Jpeg12Error> {
    if seg.len() < 6 {
        return corrupt("short frame header");
    }
    let (p, y, x, nf) = (seg[0], u16::from_be_bytes([seg[1], seg[2]]), u16::from_be_bytes([seg[3], seg[4]]), seg[5]);
    if p != PRECISION {
        return Err(Jpeg12Error::Unsupported(format!("sample precision {p}")));
    }
    if nf != 1 {
        return Err(Jpeg12Error::Unsupported(format!("{nf} components (only greyscale)")));
    }
    if seg.len() < 9 || seg[8] > 3 {
        return corrupt("bad frame component");
    }
    if (x as u32, y as u32) != (width, height) {
        return corrupt(format!("frame is {x}x{y}, the DICOM header says {width}x{height}"));
    }
    Ok((seg[6], seg[8] as usize))
}

/// What the marker segments before the scan define.
#[derive(Default)]
struct Tables {
    quant: [Option<[u16; 64]>; 4],
    dc: [Option<Huffman>; 4],
    ac: [Option<Huffman>; 4],
    restart_interval: usize,
    /// (component id, quantisation table) of the frame's one component.
    frame: Option<(u8, usize)>,
}

impl Tables {
    /// A DHT segment: one or more Huffman tables.
    fn read_huffman(&mut self, mut s: &[u8]) -> Result<(), Jpeg12Error> {
        while !s.is_empty() {
            if s.len() < 17 {
                return corrupt("short Huffman table");
            }
            let (class, id) = (s[0] >> 4, (s[0] & 15) as usize);
            let counts: [u8; 16] = s[1..17].try_into().expect("16 bytes");
            let n: usize = counts.iter().map(|&c| c as usize).sum();
            let Some(values) = s.get(17..17 + n) else { return corrupt("short Huffman table") };
            if id > 3 || class > 1 {
                return corrupt("bad Huffman table id");
            }
            let table = Some(Huffman::new(&counts, values.to_vec())?);
            if class == 0 {
                self.dc[id] = table;
            } else {
                self.ac[id] = table;
            }
            s = &s[17 + n..];
        }
        Ok(())
    }

    /// A DQT segment: one or more quantisation tables, 8- or 16-bit.
    fn read_quantisation(&mut self, mut s: &[u8]) -> Result<(), Jpeg12Error> {
        while !s.is_empty() {
            let (wide, id) = (s[0] >> 4 == 1, (s[0] & 15) as usize);
            let size = if wide { 128 } else { 64 };
            let Some(v) = s.get(1..1 + size) else { return corrupt("short quantisation table") };
            if id > 3 {
                return corrupt("bad quantisation table id");
            }
            let mut q = [0u16; 64];
            for k in 0..64 {
                q[NATURAL_ORDER[k]] = if wide { u16::from_be_bytes([v[2 * k], v[2 * k + 1]]) } else { v[k] as u16 };
            }
            self.quant[id] = Some(q);
            s = &s[1 + size..];
        }
        Ok(())
    }

    /// The SOS segment `seg`, whose entropy-coded data starts at `data`: the image.
    fn scan(&self, b: &[u8], seg: &[u8], data: usize, width: usize, height: usize) -> Result<Vec<u16>, Jpeg12Error> {
        let Some((id, tq)) = self.frame else { return corrupt("scan before the frame header") };
        if seg.len() < 6 || seg[0] != 1 || seg[1] != id {
            return corrupt("scan does not code the frame's one component");
        }
        let (td, ta) = ((seg[2] >> 4) as usize, (seg[2] & 15) as usize);
        let (Some(Some(dct)), Some(Some(act))) = (self.dc.get(td), self.ac.get(ta)) else {
            return corrupt("scan uses an undefined Huffman table");
        };
        let Some(q) = self.quant[tq] else { return corrupt("frame uses an undefined quantisation table") };
        decode_scan(b, data, dct, act, &q, self.restart_interval, width, height)
    }
}

/// The entropy-coded segment of the one scan, block by block (a single-component scan
/// is non-interleaved: one block per MCU).
#[allow(clippy::too_many_arguments)]
fn decode_scan(
    b: &[u8],
    start: usize,
    dc: &Huffman,
    ac: &Huffman,
    quant: &[u16; 64],
    restart_interval: usize,
    width: usize,
    height: usize,
) -> Result<Vec<u16>, Jpeg12Error> {
    let (bw, bh) = (width.div_ceil(8), height.div_ceil(8));
    let stride = bw * 8;
    let mut out = vec![0u16; stride * bh * 8];
    let mut bits = Bits::new(b, start);
    let mut pred = 0i32;
    let mut coef = [0i32; 64];
    let mut next_restart = 0u8;
    for block in 0..bw * bh {
        if restart_interval > 0 && block > 0 && block % restart_interval == 0 {
            bits.restart(next_restart)?;
            next_restart = (next_restart + 1) % 8;
            pred = 0;
        }
        coef.fill(0);
        let t = dc.decode(&mut bits)? as u32;
        if t > 16 {
            return corrupt("DC difference category above 16");
        }
        pred = pred.wrapping_add(extend(bits.receive(t), t));
        coef[0] = pred;
        let mut k = 1;
        while k < 64 {
            let rs = ac.decode(&mut bits)?;
            let (r, s) = ((rs >> 4) as usize, (rs & 15) as u32);
            if s == 0 {
                if r != 15 {
                    break;
                }
                k += 16;
                continue;
            }
            k += r;
            coef[NATURAL_ORDER[k.min(79)]] = extend(bits.receive(s), s);
            k += 1;
        }
        let (bx, by) = (block % bw, block / bw);
        idct_block(&coef, quant, &mut out[by * 8 * stride + bx * 8..], stride);
        if bits.ran_out {
            return corrupt("entropy-coded data ends before the last block");
        }
    }
    if stride == width {
        out.truncate(width * height);
        return Ok(out);
    }
    Ok(out.chunks_exact(stride).take(height).flat_map(|row| row[..width].iter().copied()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_limit_is_libjpegs_table() {
        assert_eq!(range_limit(0), 2048);
        assert_eq!(range_limit(-2048), 0);
        assert_eq!(range_limit(2047), 4095);
        assert_eq!(range_limit(2048), 4095);
        assert_eq!(range_limit(8191), 4095);
        assert_eq!(range_limit(-2049), 0);
        assert_eq!(range_limit(-8192), 0);
        // Far outside, libjpeg's mask wraps: 16384 is 0 again.
        assert_eq!(range_limit(16384), 2048);
    }

    #[test]
    fn a_flat_block_is_its_dc_value() {
        // DC coefficient d with quantiser q: every sample is 2048 + d * q / 8.
        let mut coef = [0i32; 64];
        coef[0] = 100;
        let mut quant = [1u16; 64];
        quant[0] = 8;
        let mut out = [0u16; 64];
        idct_block(&coef, &quant, &mut out, 8);
        assert!(out.iter().all(|&v| v == 2148), "{out:?}");
    }

    #[test]
    fn huffman_codes_follow_annex_c() {
        // Two codes of length 2 (00, 01), one of length 3 (100), one of length 12.
        let mut counts = [0u8; 16];
        counts[1] = 2;
        counts[2] = 1;
        counts[11] = 1;
        let h = Huffman::new(&counts, vec![5, 6, 7, 8]).unwrap();
        // 01 100 1010 0000 0000 ... : the 12-bit code is 1010 0000 0000.
        let data = [0b0110_0101, 0b0000_0000, 0b0000_0000, 0x00, 0x00];
        let mut bits = Bits::new(&data, 0);
        assert_eq!(h.decode(&mut bits).unwrap(), 6);
        assert_eq!(h.decode(&mut bits).unwrap(), 7);
        assert_eq!(h.decode(&mut bits).unwrap(), 8);
        assert!(!bits.ran_out);
        let too_many = Huffman::new(&[3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], vec![1, 2, 3]);
        assert!(too_many.is_err());
    }

    #[test]
    fn stuffed_bytes_and_markers() {
        // FF 00 is a data byte FF; FF D9 is a marker: zeros after it, and consuming
        // them is noticed.
        let data = [0xFF, 0x00, 0xAB, 0xFF, 0xD9];
        let mut bits = Bits::new(&data, 0);
        assert_eq!(bits.receive(8), 0xFF);
        assert_eq!(bits.receive(8), 0xAB);
        assert!(!bits.ran_out);
        assert_eq!(bits.receive(4), 0);
        assert!(bits.ran_out);
    }

    /// Two flat blocks (16 x 8 pixels) with a restart interval of one block: the DC
    /// prediction starts again from 0 after RST0. Built by hand: quantiser 1, a DC
    /// table with categories 0, 8, 9 (codes 00, 01, 10) and an AC table holding only
    /// EOB (code 00).
    fn two_blocks_with_restart(rst: u8) -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8];
        b.extend([0xFF, 0xDB, 0x00, 0x83, 0x10]);
        b.extend([0x00, 0x01].repeat(64));
        b.extend([0xFF, 0xC1, 0x00, 0x0B, 12, 0x00, 0x08, 0x00, 0x10, 1, 1, 0x11, 0]);
        b.extend([0xFF, 0xC4, 0x00, 0x28, 0x00, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 9]);
        b.extend([0x10, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        b.extend([0xFF, 0xDD, 0x00, 0x04, 0x00, 0x01]);
        b.extend([0xFF, 0xDA, 0x00, 0x08, 1, 1, 0x00, 0, 63, 0]);
        // Block 1: DC +200 (category 8: 01 11001000), EOB (00), 1-bits to the byte.
        b.extend([0b0111_0010, 0b0000_1111]);
        b.extend([0xFF, rst]);
        // Block 2: DC -300 (category 9: 10 011010011, as 211 = -300 + 511), EOB.
        b.extend([0b1001_1010, 0b0110_0111]);
        b.extend([0xFF, 0xD9]);
        b
    }

    #[test]
    fn restart_intervals_reset_the_dc_prediction() {
        let samples = decode(&two_blocks_with_restart(0xD0), 16, 8).unwrap();
        // 2048 + descale(200 * 2, 4) = 2073; 2048 + descale(-300 * 2, 4) = 2048 - 37.
        // Without the reset the second block would be 2048 - 100 / 8.
        for row in samples.chunks_exact(16) {
            assert_eq!(row, [[2073u16; 8], [2011u16; 8]].concat());
        }
        // A missing or out-of-order restart marker is an error.
        let e = decode(&two_blocks_with_restart(0xD3), 16, 8).unwrap_err();
        assert_eq!(e, Jpeg12Error::Corrupt("restart marker missing".into()));
        // The frame must be the size the DICOM header says.
        assert!(decode(&two_blocks_with_restart(0xD0), 16, 16).is_err());
    }

    #[test]
    fn frame_headers_are_found_past_other_segments() {
        let b = [
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 1, 2, 0xFF, 0xC1, 0x00, 0x0B, 12, 0x01, 0x00, 0x02, 0x00, 1, 1, 0x11, 0,
        ];
        assert_eq!(
            frame_header(&b),
            Some(FrameHeader { marker: 0xC1, precision: 12, width: 512, height: 256, components: 1 })
        );
        assert_eq!(frame_header(&b[..6]), None);
        assert_eq!(frame_header(b"not a jpeg"), None);
    }
}
