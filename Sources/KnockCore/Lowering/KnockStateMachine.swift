/// The strict sequence semantics, as data. A source's state in a sequence is the number of
/// knocks it has made correctly so far (0 is "no state"); a knock moves it as follows:
/// - the expected next knock advances it (the last one grants and clears the state);
/// - a repeat of the knock just made changes nothing (a retransmitted SYN, a double click);
/// - any other knock of the sequence resets it, to 1 when that knock is the first knock
///   (a fresh attempt) and to 0 otherwise.
/// Knocks that are not in the sequence are not seen at all.
public enum KnockStateMachine {
    public enum Action: Equatable, Sendable {
        /// Move to the given stage (1...n-1).
        case advance(to: Int)
        /// The sequence is complete: grant and clear the state.
        case grant
        /// Forget the source's progress.
        case reset
    }

    /// One rule's worth of behaviour: when the source is at `stage`, do `action`.
    public struct Transition: Equatable, Sendable {
        public var stage: Int
        public var action: Action
    }

    /// What `knock` does in `knocks`, in the order the rules must run.
    ///
    /// All transitions live in one chain and run one after another on the same packet, so the
    /// order matters: the transition from stage 0 comes first, then the others from the
    /// highest stage down. A transition only ever moves a source to a stage whose rule has
    /// already run, or to stage 1, where this knock is a repeat and changes nothing. So each
    /// packet causes at most one transition per sequence, with no verdicts needed.
    public static func transitions(for knock: Knock, in knocks: [Knock]) -> [Transition] {
        guard knocks.contains(knock) else { return [] }
        let count = knocks.count
        var transitions: [Transition] = []
        if knocks.first == knock {
            transitions.append(Transition(stage: 0, action: count == 1 ? .grant : .advance(to: 1)))
        }
        for stage in stride(from: count - 1, through: 1, by: -1) {
            let next = knocks[stage]
            let previous = knocks[stage - 1]
            if knock == next {
                transitions.append(Transition(stage: stage, action: stage + 1 == count ? .grant : .advance(to: stage + 1)))
            } else if knock == previous {
                continue
            } else if knock == knocks[0] {
                transitions.append(Transition(stage: stage, action: .advance(to: 1)))
            } else {
                transitions.append(Transition(stage: stage, action: .reset))
            }
        }
        return transitions
    }

    /// Plays `sent` through the transitions exactly as the kernel runs the rules: every
    /// transition in order, each matching against the stage left by the ones before it.
    /// Returns the stage after each knock, with `nil` for "granted". Lowering never calls
    /// this; tests hold it up against a direct reading of the semantics.
    public static func simulateRules(_ sent: [Knock], for knocks: [Knock]) -> [Int?] {
        var stage = 0
        var trace: [Int?] = []
        for knock in sent {
            var granted = false
            for transition in transitions(for: knock, in: knocks) where transition.stage == stage {
                switch transition.action {
                case .advance(let next): stage = next
                case .grant: stage = 0; granted = true
                case .reset: stage = 0
                }
            }
            trace.append(granted ? nil : stage)
        }
        return trace
    }
}
