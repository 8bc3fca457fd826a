//! A walk over DICOM element headers before dicom-rs parses anything.
//!
//! dicom-rs allocates and zero-fills an element's declared length before it reads the
//! value, so one corrupt or hostile length field in a 674-byte file costs up to 4 GiB
//! per worker (a poison pill on a node with a memory limit: every resume hits it again).
//! The whole file is in memory, so a defined length that runs past its end is certainly
//! wrong, and this walk refuses it first.
//!
//! The walk must see the file the way dicom-rs will read it, or a length that dicom-rs
//! reads is one the walk never checked. They differ in one place: an element of VR UN
//! (or an unknown VR) with undefined length is, by PS3.5 6.2.2, a sequence encoded in
//! Implicit VR Little Endian, while dicom-rs reads its content in the data set's own
//! explicit encoding, taking item tags and value bytes for VRs and lengths (pydicom's
//! `UN_sequence.dcm`: a 3.75 GB length made of an item tag). Such elements are reported
//! as [`Opaque`]: [`patch_opaque`] gives them the defined length of their content, so
//! dicom-rs keeps them as an opaque UN value. cambox reads no private or unknown
//! sequence, so nothing is lost.
//!
//! Anything else the walk does not understand (an unknown item tag, an element among
//! pixel fragments) is an error: handing dicom-rs a structure the walk gave up on would
//! let it meet unchecked lengths further on.

use std::borrow::Cow;

/// How element headers are encoded (PS3.5 7.1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Vr {
    Explicit,
    Implicit,
    /// Inside encapsulated Pixel Data: only items (fragments), never descended into.
    Fragments,
}

/// Byte order of tags and lengths.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Order {
    Little,
    Big,
}

/// An element whose defined length runs past the end of the file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Overrun {
    pub tag: (u16, u16),
    pub declared: u32,
    pub present: usize,
}

/// Why the walk refused the bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum WalkError {
    Overrun(Overrun),
    /// A header no DICOM reader can place, at this byte offset.
    Malformed {
        at: usize,
    },
}

/// An explicit-VR UN (or unknown-VR) element of undefined length: its 32-bit length
/// field is at `length_at`, and `length` bytes (its items and its sequence delimiter)
/// follow the header, up to the matching delimiter or the end of the bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Opaque {
    pub length_at: usize,
    pub length: u32,
}

/// What a complete walk found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Walked {
    /// Where it stopped: the end of the bytes, or with `meta_only` the first element
    /// outside group 0002 (where the data set starts).
    pub end: usize,
    pub opaque: Vec<Opaque>,
}

/// Length value meaning "undefined" (delimited by an item or sequence delimiter).
const UNDEFINED: u32 = u32::MAX;
/// Item, item delimiter and sequence delimiter: group FFFE.
const ITEM_GROUP: u16 = 0xFFFE;
const ITEM: u16 = 0xE000;
const ITEM_END: u16 = 0xE00D;
const SEQUENCE_END: u16 = 0xE0DD;
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);
/// PS3.5 7.1.2: these VRs have a 16-bit length; every other one, unknown VRs included
/// (read as UN, as dicom-rs does), has 2 reserved bytes and a 32-bit length.
const SHORT_VRS: [&[u8; 2]; 21] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN", b"SH", b"SL", b"SS",
    b"ST", b"TM", b"UI", b"UL", b"US",
];
/// Long VRs whose undefined-length content keeps the data set's encoding (UN's and
/// unknown VRs' content is implicit VR, PS3.5 6.2.2).
const LONG_VRS: [&[u8; 2]; 12] = [b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UR", b"UT", b"UV"];

/// True when two bytes can be an explicit VR: two upper-case letters (pydicom's test
/// for telling explicit from implicit VR).
pub(crate) fn looks_like_vr(v: &[u8]) -> bool {
    v.len() >= 2 && v[..2].iter().all(u8::is_ascii_uppercase)
}

/// One open undefined-length container.
struct Open {
    /// How its content is encoded.
    mode: Vr,
    /// Index into the opaque list when it is an opaque UN element.
    opaque: Option<usize>,
}

/// Walks the element headers of `b` from `pos` (descending into sequences and items,
/// skipping pixel fragments) and fails on the first defined length that runs past the
/// end, or on a header it cannot place.
pub(crate) fn check_lengths(
    b: &[u8],
    mut pos: usize,
    vr: Vr,
    order: Order,
    meta_only: bool,
) -> Result<Walked, WalkError> {
    let mut walker = Walker { b, order, stack: vec![Open { mode: vr, opaque: None }], opaque: Vec::new() };
    while pos + 8 <= b.len() {
        let tag = (walker.u16_at(pos), walker.u16_at(pos + 2));
        if meta_only && tag.0 != 0x0002 {
            break;
        }
        let step = if tag.0 == ITEM_GROUP { walker.item(pos, tag)? } else { walker.element(pos, tag)? };
        match step {
            Some(next) => pos = next,
            None => break,
        }
    }
    // Opaque elements still open at the end run to the end of the bytes.
    while let Some(open) = walker.stack.pop() {
        walker.close(open, b.len());
    }
    Ok(Walked { end: pos.min(b.len()), opaque: walker.opaque })
}

/// The state of one walk: the bytes, the open undefined-length containers and the
/// opaque elements found so far.
struct Walker<'a> {
    b: &'a [u8],
    order: Order,
    /// Never empty: the bottom is the data set itself.
    stack: Vec<Open>,
    opaque: Vec<Opaque>,
}

impl Walker<'_> {
    fn u16_at(&self, i: usize) -> u16 {
        let b = [self.b[i], self.b[i + 1]];
        match self.order {
            Order::Little => u16::from_le_bytes(b),
            Order::Big => u16::from_be_bytes(b),
        }
    }

    fn u32_at(&self, i: usize) -> u32 {
        let b = [self.b[i], self.b[i + 1], self.b[i + 2], self.b[i + 3]];
        match self.order {
            Order::Little => u32::from_le_bytes(b),
            Order::Big => u32::from_be_bytes(b),
        }
    }

    fn mode(&self) -> Vr {
        self.stack.last().expect("never empty").mode
    }

    /// Fails when `len` bytes from `start` run past the end.
    fn fits(&self, tag: (u16, u16), start: usize, len: u32) -> Result<(), WalkError> {
        let present = self.b.len().saturating_sub(start);
        if len as usize > present {
            Err(WalkError::Overrun(Overrun { tag, declared: len, present }))
        } else {
            Ok(())
        }
    }

    /// Records where a closed opaque element ends.
    fn close(&mut self, open: Open, end: usize) {
        if let Some(i) = open.opaque {
            let start = self.opaque[i].length_at + 4;
            self.opaque[i].length = u32::try_from(end - start).unwrap_or(UNDEFINED - 1);
        }
    }

    /// An item or delimiter header (group FFFE) at `pos`: where the next header starts.
    fn item(&mut self, pos: usize, tag: (u16, u16)) -> Result<Option<usize>, WalkError> {
        let len = self.u32_at(pos + 4);
        let next = match tag.1 {
            ITEM if len == UNDEFINED => pos + 8,
            ITEM => {
                self.fits(tag, pos + 8, len)?;
                pos + 8 + if self.mode() == Vr::Fragments { len as usize } else { 0 }
            }
            ITEM_END => pos + 8,
            SEQUENCE_END => {
                if self.stack.len() > 1 {
                    let open = self.stack.pop().expect("more than one");
                    self.close(open, pos + 8);
                }
                pos + 8
            }
            _ => return Err(WalkError::Malformed { at: pos }),
        };
        Ok(Some(next))
    }

    /// A data element header at `pos`: where the next header starts, or `None` when a
    /// header is cut by the end of the bytes.
    fn element(&mut self, pos: usize, tag: (u16, u16)) -> Result<Option<usize>, WalkError> {
        let b = self.b;
        let mode = self.mode();
        let (explicit_vr, len, header) = match mode {
            Vr::Fragments => return Err(WalkError::Malformed { at: pos }),
            Vr::Explicit => {
                let v = [b[pos + 4], b[pos + 5]];
                if SHORT_VRS.contains(&&v) {
                    (Some(v), self.u16_at(pos + 6) as u32, 8)
                } else if pos + 12 > b.len() {
                    // A long-VR header cut by the end of the file: the reader fails
                    // at the same place, allocating nothing.
                    return Ok(None);
                } else {
                    (Some(v), self.u32_at(pos + 8), 12)
                }
            }
            Vr::Implicit => (None, self.u32_at(pos + 4), 8),
        };
        if len == UNDEFINED {
            let open = match (tag, explicit_vr) {
                (PIXEL_DATA, _) => Open { mode: Vr::Fragments, opaque: None },
                (_, Some(v)) if !LONG_VRS.contains(&&v) => {
                    self.opaque.push(Opaque { length_at: pos + 8, length: 0 });
                    Open { mode: Vr::Implicit, opaque: Some(self.opaque.len() - 1) }
                }
                _ => Open { mode, opaque: None },
            };
            self.stack.push(open);
            return Ok(Some(pos + header));
        }
        self.fits(tag, pos + header, len)?;
        // Sequences are walked into (their items' lengths are checked too); in implicit
        // VR a sequence is recognised by its first item tag.
        let sequence = match explicit_vr {
            Some(v) => &v == b"SQ",
            None => len >= 8 && self.u16_at(pos + 8) == ITEM_GROUP && self.u16_at(pos + 10) == ITEM,
        };
        Ok(Some(pos + header + if sequence { 0 } else { len as usize }))
    }
}

/// `b` with every opaque element's undefined length replaced by its content's length
/// (borrowed when there is none).
pub(crate) fn patch_opaque<'a>(b: Cow<'a, [u8]>, opaque: &[Opaque], order: Order) -> Cow<'a, [u8]> {
    if opaque.is_empty() {
        return b;
    }
    let mut owned = b.into_owned();
    for o in opaque {
        let bytes = match order {
            Order::Little => o.length.to_le_bytes(),
            Order::Big => o.length.to_be_bytes(),
        };
        owned[o.length_at..o.length_at + 4].copy_from_slice(&bytes);
    }
    Cow::Owned(owned)
}

/// The file meta group (`DICM` + group 0002 elements, explicit VR little endian, as the
/// walk bounded them) with a File Meta Information Group Length that tells the truth.
///
/// dicom-rs reads the meta group by its group length, and fails without one; pydicom
/// reads it by its tags. Files from real archives have a missing or wrong group length
/// (pydicom's `no_meta_group_length.dcm`, `UN_sequence.dcm`), so the elements are
/// taken as the walk found them and the length is recomputed.
pub(crate) fn normalised_meta(magic: &[u8], elements: &[u8]) -> Vec<u8> {
    const GROUP_LENGTH: (u16, u16) = (0x0002, 0x0000);
    let mut kept = Vec::with_capacity(elements.len());
    let mut pos = 0;
    while pos + 8 <= elements.len() {
        let tag = (
            u16::from_le_bytes([elements[pos], elements[pos + 1]]),
            u16::from_le_bytes([elements[pos + 2], elements[pos + 3]]),
        );
        let v = [elements[pos + 4], elements[pos + 5]];
        let (len, header) = if SHORT_VRS.contains(&&v) {
            (u16::from_le_bytes([elements[pos + 6], elements[pos + 7]]) as usize, 8)
        } else if pos + 12 <= elements.len() {
            let l = u32::from_le_bytes([elements[pos + 8], elements[pos + 9], elements[pos + 10], elements[pos + 11]]);
            (if l == UNDEFINED { 0 } else { l as usize }, 12)
        } else {
            break;
        };
        let end = (pos + header + len).min(elements.len());
        if tag != GROUP_LENGTH {
            kept.extend_from_slice(&elements[pos..end]);
        }
        pos = end;
    }
    let mut out = Vec::with_capacity(magic.len() + 12 + kept.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0]);
    out.extend_from_slice(&(kept.len() as u32).to_le_bytes());
    out.extend_from_slice(&kept);
    out
}

/// How a data set without preamble and meta group (ACR-NEMA style, or a bare data set
/// written without `DICM`) is encoded, if it starts like one: its first element is in
/// group 0008 (Identifying, which every image data set starts with after the meta
/// group) and its value, of defined length, fits in the file. Explicit VR when the VR
/// field holds a standard VR, else implicit; big endian only with explicit VR (as
/// pydicom guesses with `force=True`). A text file never passes.
pub(crate) fn sniff_bare_data_set(b: &[u8]) -> Option<(Vr, Order)> {
    const IDENTIFYING_GROUP: u16 = 0x0008;
    if b.len() < 8 {
        return None;
    }
    let v: &[u8; 2] = b[4..6].try_into().expect("two bytes");
    let explicit = SHORT_VRS.contains(&v) || LONG_VRS.contains(&v) || v == b"UN";
    let first_fits = |order: Order, vr: Vr| {
        let u16_at = |i: usize| match order {
            Order::Little => u16::from_le_bytes([b[i], b[i + 1]]) as u64,
            Order::Big => u16::from_be_bytes([b[i], b[i + 1]]) as u64,
        };
        let u32_at = |i: usize| match order {
            Order::Little => u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as u64,
            Order::Big => u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as u64,
        };
        let (header, len) = match vr {
            Vr::Explicit if SHORT_VRS.contains(&v) => (8, u16_at(6)),
            Vr::Explicit if b.len() >= 12 => (12, u32_at(8)),
            Vr::Explicit => return false,
            _ => (8, u32_at(4)),
        };
        len != UNDEFINED as u64 && header + len <= b.len() as u64
    };
    let le_group = u16::from_le_bytes([b[0], b[1]]);
    let be_group = u16::from_be_bytes([b[0], b[1]]);
    let (vr, order) = if le_group == IDENTIFYING_GROUP {
        (if explicit { Vr::Explicit } else { Vr::Implicit }, Order::Little)
    } else if be_group == IDENTIFYING_GROUP && explicit {
        (Vr::Explicit, Order::Big)
    } else {
        return None;
    };
    first_fits(order, vr).then_some((vr, order))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An explicit-VR element: tag, VR, value.
    pub(crate) fn el(group: u16, elem: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut v = [group.to_le_bytes(), elem.to_le_bytes()].concat();
        v.extend_from_slice(vr);
        if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
            v.extend_from_slice(&[0, 0]);
            v.extend_from_slice(&(value.len() as u32).to_le_bytes());
        } else {
            v.extend_from_slice(&(value.len() as u16).to_le_bytes());
        }
        v.extend_from_slice(value);
        v
    }

    fn item(content: &[u8]) -> Vec<u8> {
        [&[0xFE, 0xFF, 0x00, 0xE0][..], &(content.len() as u32).to_le_bytes(), content].concat()
    }

    fn walk(b: &[u8], vr: Vr) -> Result<Walked, WalkError> {
        check_lengths(b, 0, vr, Order::Little, false)
    }

    fn end(b: &[u8], vr: Vr) -> Result<usize, WalkError> {
        walk(b, vr).map(|w| w.end)
    }

    #[test]
    fn lengths_past_the_end_of_the_file_are_caught_before_parsing() {
        let name = el(0x0010, 0x0010, b"PN", b"Doe^John");
        let seq = el(0x0008, 0x1110, b"SQ", &item(&el(0x0008, 0x1150, b"UI", b"1.2")));
        let pixels = el(0x7FE0, 0x0010, b"OB", &[7u8; 64]);
        let good = [name.clone(), seq.clone(), pixels.clone()].concat();
        assert_eq!(end(&good, Vr::Explicit), Ok(good.len()));
        // Pixel Data cut short.
        let cut = &good[..good.len() - 24];
        assert_eq!(
            walk(cut, Vr::Explicit),
            Err(WalkError::Overrun(Overrun { tag: (0x7FE0, 0x0010), declared: 64, present: 40 }))
        );
        // A corrupt length inside a sequence item (a 4 GiB allocation for dicom-rs).
        let mut bad = good.clone();
        let at = name.len() + 12 + 8 + 6; // the length of the UI element inside the item
        bad[at] = 0xFF;
        assert!(walk(&bad, Vr::Explicit).is_err());
        let mut huge = good.clone();
        huge[name.len() + 8..name.len() + 12].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        let Err(WalkError::Overrun(o)) = walk(&huge, Vr::Explicit) else { panic!("not an overrun") };
        assert_eq!((o.tag, o.declared), ((0x0008, 0x1110), 0xFFFF_FFF0));
        // Encapsulated pixel data: fragments are skipped, their lengths checked.
        let mut enc = [0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF].to_vec();
        enc.extend(item(&[]));
        enc.extend(item(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0x7F])); // fragment bytes that look like a tag
        enc.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        assert_eq!(end(&enc, Vr::Explicit), Ok(enc.len()));
        // Implicit VR: 4-byte lengths, sequences found by their first item.
        let imp = |g: u16, e: u16, v: &[u8]| {
            [&g.to_le_bytes()[..], &e.to_le_bytes(), &(v.len() as u32).to_le_bytes(), v].concat()
        };
        let inner = imp(0x0008, 0x1150, b"1.2");
        let f = [imp(0x0010, 0x0010, b"Doe^John"), imp(0x0008, 0x1110, &item(&inner))].concat();
        assert_eq!(end(&f, Vr::Implicit), Ok(f.len()));
        let mut g = f.clone();
        let l = g.len();
        g[l - 7] = 0x7F; // the inner element's length
        assert!(walk(&g, Vr::Implicit).is_err());
        // meta_only stops at the first element outside group 0002.
        let meta = [el(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2\0"), name].concat();
        assert_eq!(check_lengths(&meta, 0, Vr::Explicit, Order::Little, true).map(|w| w.end), Ok(26));
    }

    #[test]
    fn big_endian_lengths_are_checked_too() {
        // (0008,0016) UI "1.2" then (7FE0,0010) OW claiming 4 GiB, big endian.
        let mut b = vec![0x00, 0x08, 0x00, 0x16, b'U', b'I', 0x00, 0x04];
        b.extend_from_slice(b"1.2\0");
        b.extend_from_slice(&[0x7F, 0xE0, 0x00, 0x10, b'O', b'W', 0, 0, 0xFF, 0xFF, 0xFF, 0xF0]);
        b.extend_from_slice(&[0u8; 16]);
        let Err(WalkError::Overrun(o)) = check_lengths(&b, 0, Vr::Explicit, Order::Big, false) else {
            panic!("big-endian overrun not caught")
        };
        assert_eq!((o.tag, o.declared, o.present), ((0x7FE0, 0x0010), 0xFFFF_FFF0, 16));
    }

    /// pydicom's UN_sequence.dcm in miniature: an explicit-VR UN element of undefined
    /// length whose items are implicit VR. Read as explicit, the first inner element's
    /// "length" would be its item tag, FFFE E000 = 3.75 GB.
    #[test]
    fn undefined_length_un_becomes_an_opaque_value_of_its_real_length() {
        let imp = |g: u16, e: u16, v: &[u8]| {
            [&g.to_le_bytes()[..], &e.to_le_bytes(), &(v.len() as u32).to_le_bytes(), v].concat()
        };
        let undefined_item = |content: &[u8]| {
            [&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF][..], content, &[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]]
                .concat()
        };
        let seq_end = [0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0];
        // (0008,1115) implicit, undefined length, holding one item.
        let inner = [
            &[0x08, 0x00, 0x15, 0x11, 0xFF, 0xFF, 0xFF, 0xFF][..],
            &undefined_item(&imp(0x0008, 0x1150, b"1.2")),
            &seq_end,
        ]
        .concat();
        let content = [undefined_item(&inner), seq_end.to_vec()].concat();
        let un = [&[0x09, 0x00, 0x10, 0x10, b'U', b'N', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF][..], &content].concat();
        let pixels = el(0x7FE0, 0x0010, b"OB", &[7u8; 16]);
        let b = [el(0x0008, 0x0016, b"UI", b"1.2\0"), un.clone(), pixels].concat();
        let w = walk(&b, Vr::Explicit).unwrap();
        assert_eq!(w.end, b.len());
        assert_eq!(w.opaque, vec![Opaque { length_at: 12 + 8, length: content.len() as u32 }]);
        let patched = patch_opaque(Cow::Borrowed(&b), &w.opaque, Order::Little);
        // Patched, it is a plain defined-length element: nothing opaque, same size.
        let again = walk(&patched, Vr::Explicit).unwrap();
        assert_eq!((again.end, again.opaque.len()), (b.len(), 0));
        // Never closed (the file ends inside it): it runs to the end.
        let open = [el(0x0008, 0x0016, b"UI", b"1.2\0"), un[..un.len() - 8].to_vec()].concat();
        let w = walk(&open, Vr::Explicit).unwrap();
        assert_eq!(w.opaque, vec![Opaque { length_at: 20, length: (open.len() - 24) as u32 }]);
        // An unknown VR is read as UN, by dicom-rs and by the walk.
        let mut unknown = b.clone();
        unknown[16..18].copy_from_slice(&[0xFF, 0xFF]);
        assert_eq!(walk(&unknown, Vr::Explicit).unwrap().opaque.len(), 1);
    }

    #[test]
    fn headers_no_reader_can_place_are_errors() {
        let mut b = el(0x0008, 0x0016, b"UI", b"1.2\0");
        b.extend_from_slice(&[0xFE, 0xFF, 0x34, 0x12, 0, 0, 0, 0]);
        assert_eq!(walk(&b, Vr::Explicit), Err(WalkError::Malformed { at: 12 }));
        // An element among pixel fragments.
        let mut enc = [0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF].to_vec();
        enc.extend(item(&[]));
        enc.extend(el(0x0008, 0x0016, b"UI", b"1.2\0"));
        assert_eq!(walk(&enc, Vr::Explicit), Err(WalkError::Malformed { at: 20 }));
    }

    #[test]
    fn meta_group_length_is_recomputed() {
        let ts = el(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2\0");
        let wrong = [el(0x0002, 0x0000, b"UL", &999u32.to_le_bytes()), ts.clone()].concat();
        for elements in [wrong, ts.clone()] {
            let m = normalised_meta(b"DICM", &elements);
            assert_eq!(&m[..4], b"DICM");
            assert_eq!(&m[4..12], &[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0]);
            assert_eq!(u32::from_le_bytes(m[12..16].try_into().unwrap()) as usize, ts.len());
            assert_eq!(&m[16..], &ts[..]);
        }
    }

    #[test]
    fn bare_data_sets_are_sniffed_strictly() {
        let explicit = el(0x0008, 0x0005, b"CS", b"ISO_IR 100");
        assert_eq!(sniff_bare_data_set(&explicit), Some((Vr::Explicit, Order::Little)));
        let implicit = [&[0x08, 0x00, 0x05, 0x00, 10, 0, 0, 0][..], b"ISO_IR 100"].concat();
        assert_eq!(sniff_bare_data_set(&implicit), Some((Vr::Implicit, Order::Little)));
        let big = [&[0x00, 0x08, 0x00, 0x05, b'C', b'S', 0, 10][..], b"ISO_IR 100"].concat();
        assert_eq!(sniff_bare_data_set(&big), Some((Vr::Explicit, Order::Big)));
        // A value longer than the file, or not a DICOM start at all.
        let cut = &explicit[..explicit.len() - 1];
        for text in [
            &b"This is not a DICOM file."[..],
            b"\x20\x08\x00\x05\x00CS\n",
            b"\x08\x00",
            b"\x08\x00 is not enough",
            cut,
        ] {
            assert_eq!(sniff_bare_data_set(text), None);
        }
    }
}
