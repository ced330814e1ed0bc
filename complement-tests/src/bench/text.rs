//! Message bodies: Romeo-and-Juliet style lines of varied length, generated
//! deterministically (no data files).

const SPEAKERS: &[&str] = &[
    "ROMEO",
    "JULIET",
    "NURSE",
    "MERCUTIO",
    "BENVOLIO",
    "TYBALT",
    "FRIAR LAURENCE",
    "CAPULET",
    "LADY CAPULET",
    "MONTAGUE",
    "PRINCE",
    "PARIS",
    "SAMPSON",
    "GREGORY",
    "BALTHASAR",
    "PETER",
];

const FRAGMENTS: &[&str] = &[
    "But soft, what light through yonder window breaks?",
    "It is the east, and Juliet is the sun.",
    "O Romeo, Romeo, wherefore art thou Romeo?",
    "Deny thy father and refuse thy name.",
    "What's in a name? That which we call a rose by any other word would smell as sweet.",
    "Good night, good night! Parting is such sweet sorrow.",
    "A plague o' both your houses!",
    "These violent delights have violent ends.",
    "Wisely and slow; they stumble that run fast.",
    "My bounty is as boundless as the sea, my love as deep.",
    "Two households, both alike in dignity, in fair Verona, where we lay our scene.",
    "Do you bite your thumb at us, sir?",
    "I do bite my thumb, sir.",
    "Thus with a kiss I die.",
    "O happy dagger, this is thy sheath.",
    "Ask for me tomorrow, and you shall find me a grave man.",
    "Tempt not a desperate man.",
    "See how she leans her cheek upon her hand.",
    "Come, gentle night; come, loving, black-browed night.",
    "Give me my Romeo, and when he shall die, take him and cut him out in little stars.",
    "I will bite thee by the ear for that jest.",
    "Is the day so young?",
    "Under love's heavy burden do I sink.",
    "Love is a smoke made with the fume of sighs.",
    "The clock struck nine when I did send the nurse.",
    "Hie you, make haste, for it grows very late.",
    "Arise, fair sun, and kill the envious moon.",
    "Madam, your mother craves a word with you.",
    "Where is my lady's lord, where's Romeo?",
    "Peace, peace, Mercutio, peace! Thou talk'st of nothing.",
    "True, I talk of dreams, which are the children of an idle brain.",
    "Let me stand here till thou remember it.",
];

/// An endless, reproducible stream of lines such as
/// `JULIET: Is the day so young? Hie you, make haste, for it grows very late.`
pub struct Lines {
    state: u64,
}

impl Lines {
    /// A stream determined by `seed`.
    pub fn new(seed: u64) -> Lines {
        Lines { state: seed }
    }

    /// splitmix64.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        // The slices are tiny: the modulo bias is irrelevant.
        items[(self.next_u64() % items.len() as u64) as usize]
    }

    /// The next line: a speaker and one to three fragments.
    pub fn next_line(&mut self) -> String {
        let speaker = self.pick(SPEAKERS);
        let mut line = format!("{speaker}: {}", self.pick(FRAGMENTS));
        for _ in 0..self.next_u64() % 3 {
            line.push(' ');
            line.push_str(self.pick(FRAGMENTS));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_reproducible_and_varied() {
        let a: Vec<String> = (0..50)
            .scan(Lines::new(7), |l, _| Some(l.next_line()))
            .collect();
        let b: Vec<String> = (0..50)
            .scan(Lines::new(7), |l, _| Some(l.next_line()))
            .collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|line| line.contains(": ")));
        let lengths: std::collections::BTreeSet<usize> = a.iter().map(String::len).collect();
        assert!(lengths.len() > 10, "lengths should vary: {lengths:?}");
    }
}
