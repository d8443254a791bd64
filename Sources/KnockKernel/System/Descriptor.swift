import Glibc

/// The two loops every whole-file read and write here needs: short counts and EINTR retried.
public enum Descriptor {
    /// Writes all of `text` at the descriptor's position; false on an error (errno says which).
    public static func writeAll(_ fd: Int32, _ text: String) -> Bool {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return false }
            bytes = bytes.dropFirst(written)
        }
        return true
    }

    /// Everything from the start of the file, whatever the descriptor's position (a memfd is
    /// read back after it was written); nil on an error (errno says which).
    static func readAll(_ fd: Int32) -> String? {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(data.count)) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { return nil }
            if count == 0 { return String(decoding: data, as: UTF8.self) }
            data += buffer[..<count]
        }
    }
}
