//! Random identifiers: UUID v4 text for metadata.uid and generateName suffixes.

/// A random RFC 4122 version 4 UUID in its canonical text form, drawn from the simulator's
/// seeded RNG (not the OS's) so that a seed reproduces a run.
pub(crate) fn uuid_v4(rng: &mut fastrand::Rng) -> String {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// The alphabet apimachinery's rand.String uses (no vowels, no confusable digits).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A random suffix like the one the apiserver appends to generateName.
pub(crate) fn random_suffix(rng: &mut fastrand::Rng, len: usize) -> String {
    (0..len)
        .map(|_| ALPHANUMS[rng.usize(..ALPHANUMS.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4_and_reproducible() {
        let a = uuid_v4(&mut fastrand::Rng::with_seed(7));
        assert_eq!(a, uuid_v4(&mut fastrand::Rng::with_seed(7)));
        let parsed = uuid::Uuid::parse_str(&a).expect("canonical text");
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(a.len(), 36);
    }
}
