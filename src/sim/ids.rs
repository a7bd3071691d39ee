//! Random identifiers: UUID v4 text for metadata.uid and generateName suffixes.

/// A random RFC 4122 version 4 UUID in its canonical text form.
pub(crate) fn uuid_v4(rng: &mut fastrand::Rng) -> String {
    let mut b = [0u8; 16];
    rng.fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let h: String = b
        .iter()
        .flat_map(|x| {
            [
                HEX[usize::from(x >> 4)] as char,
                HEX[usize::from(x & 15)] as char,
            ]
        })
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The alphabet apimachinery's rand.String uses (no vowels, no confusable digits).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A random suffix like the one the apiserver appends to generateName.
pub(crate) fn random_suffix(rng: &mut fastrand::Rng, len: usize) -> String {
    (0..len)
        .map(|_| ALPHANUMS[rng.usize(..ALPHANUMS.len())] as char)
        .collect()
}
