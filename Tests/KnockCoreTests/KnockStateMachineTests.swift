@testable import KnockCore
@testable import KnockTestSupport
import Testing

struct KnockStateMachineTests {
    /// The semantics as the issue states them, read directly: the stage after each knock,
    /// nil for a grant.
    static func reference(_ sent: [Knock], for knocks: [Knock]) -> [Int?] {
        var stage = 0
        return sent.map { knock in
            if knock == knocks[stage] {
                stage += 1
                if stage == knocks.count { stage = 0; return nil }
            } else if stage >= 1 && knock == knocks[stage - 1] {
                // A repeat of the knock just made.
            } else if !knocks.contains(knock) {
                // Not part of this sequence: not seen.
            } else if knock == knocks[0] {
                stage = knocks.count == 1 ? 0 : 1
                if knocks.count == 1 { return nil }
            } else {
                stage = 0
            }
            return stage
        }
    }

    @Test("rules run in order behave like the semantics, on random sequences and knock streams")
    func rulesMatchReference() {
        var generator = SplitMix(seed: 0x6b6e6f636b)
        let alphabet: [Knock] = [.tcp(1), .tcp(2), .udp(1), .udp(3), .tcp(4)]
        for _ in 0..<5000 {
            let length = Int.random(in: 1...5, using: &generator)
            var knocks: [Knock] = []
            while knocks.count < length {
                let knock = alphabet.randomElement(using: &generator)!
                if knocks.last != knock { knocks.append(knock) }
            }
            let sent = (0..<Int.random(in: 1...12, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }
            #expect(KnockStateMachine.simulateRules(sent, for: knocks) == Self.reference(sent, for: knocks),
                    "knocks \(knocks), sent \(sent)")
        }
    }

    @Test("the issue's examples")
    func examples() {
        let ssh: [Knock] = [.tcp(7000), .udp(8000), .tcp(9000)]
        #expect(KnockStateMachine.simulateRules([.tcp(7000), .udp(8000), .tcp(9000)], for: ssh).last! == nil)
        #expect(KnockStateMachine.simulateRules([.tcp(7000), .tcp(9000), .udp(8000), .tcp(9000)], for: ssh) == [1, 0, 0, 0])
        #expect(KnockStateMachine.simulateRules([.tcp(7000), .tcp(7000), .udp(8000), .udp(8000), .tcp(9000)], for: ssh) == [1, 1, 2, 2, nil])
    }

    @Test("a knock that repeats earlier in the sequence still needs its turn")
    func repeatedKnockInSequence() {
        let knocks: [Knock] = [.tcp(1), .tcp(2), .tcp(1), .tcp(3)]
        #expect(KnockStateMachine.simulateRules([.tcp(1), .tcp(2), .tcp(1), .tcp(1), .tcp(3)], for: knocks) == [1, 2, 3, 3, nil])
        #expect(KnockStateMachine.simulateRules([.tcp(1), .tcp(3)], for: knocks) == [1, 0])
    }
}
