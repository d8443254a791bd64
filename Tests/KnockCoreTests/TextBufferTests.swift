@testable import KnockCore
import Testing

/// The renderer's byte buffer must write exactly what `String` would.
struct TextBufferTests {
    @Test("numbers are written as String(number) writes them")
    func numbers() {
        let values: [Int64] = [0, 1, 9, 10, 99, 100, 255, 256, 65535, 65536, -1, -10, -65535, Int64(Int32.max),
                               999_999_999_999_999_999, Int64.max, Int64.min]
        for value in values {
            var text = TextBuffer()
            text.append(value)
            #expect(text.string == String(value))
        }
        var text = TextBuffer()
        text.append(UInt64.max)
        text.append(UInt16(7))
        #expect(text.string == String(UInt64.max) + "7")
    }

    @Test("literals, small and large strings, and non-ASCII text are copied byte for byte")
    func strings() {
        var text = TextBuffer(capacity: 1)
        let large = String(repeating: "knock ", count: 1000)
        text.append("table ")
        text.append(contentsOf: "s0001")
        text.append(contentsOf: large)
        text.append(contentsOf: "é🔥")
        text.append(contentsOf: "")
        #expect(text.string == "table s0001" + large + "é🔥")
    }
}
