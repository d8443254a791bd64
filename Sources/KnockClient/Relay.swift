import Glibc

/// Copies bytes between a local pair of descriptors (stdin and stdout) and a connection, both
/// ways at once, for `knock --proxy`: ssh's `ProxyCommand` speaks its protocol over the
/// command's stdin and stdout. Bytes pass unchanged, whatever they are.
///
/// It ends as a TCP connection does: end of input shuts down the connection's sending side
/// (the server sees end of stream and may still answer), and the relay goes on until the
/// server closes. It never closes a descriptor it was given; its caller owns them.
///
/// The local descriptors are used in the mode they come in: `O_NONBLOCK` belongs to the open
/// file, which a terminal shares with the shell, so the relay does not set it. A write to a
/// blocking stdout may then wait until the reader takes the bytes, which ssh always does.
public struct Relay: Sendable {
    /// How it ended.
    public enum Ending: Equatable, Sendable {
        /// The server closed the connection and every byte it sent was written out.
        case connectionClosed
        /// The output's reader went away (`EPIPE`): nothing is left to relay to.
        case outputClosed
    }

    /// A system call that failed in a way that is not an end of stream.
    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public let call: String
        public let errno: Int32

        public var description: String { "\(call): \(String(cString: strerror(errno)))" }
    }

    let input: Int32
    let output: Int32
    let connection: Int32
    let bufferSize: Int

    /// `connection` is a stream socket (it is shut down for writing at the end of input).
    /// 64 KiB per direction keeps the system calls per megabyte few.
    public init(input: Int32, output: Int32, connection: Int32, bufferSize: Int = 64 * 1024) {
        self.input = input
        self.output = output
        self.connection = connection
        self.bufferSize = bufferSize
    }

    /// Relays until the server closes the connection or the output's reader goes. A reset
    /// connection or any other failure is thrown. Write `EPIPE` on the connection (the server
    /// shut down its receiving side) ends the upstream direction only, and the relay keeps
    /// reading what the server still sends. Uses `MSG_NOSIGNAL` on the connection; the caller
    /// ignores `SIGPIPE` if a closed output must not kill the process.
    public func run() throws(Failure) -> Ending {
        var upstream = Direction(capacity: bufferSize)
        var downstream = Direction(capacity: bufferSize)
        while true {
            // Each direction either waits for bytes to read or for room to write what it holds.
            var watched: [pollfd] = []
            if !upstream.sourceEnded && upstream.isEmpty { watched.append(pollfd(fd: input, events: Int16(POLLIN), revents: 0)) }
            var connectionEvents: Int16 = 0
            if !upstream.isEmpty { connectionEvents |= Int16(POLLOUT) }
            if downstream.isEmpty { connectionEvents |= Int16(POLLIN) }
            if connectionEvents != 0 { watched.append(pollfd(fd: connection, events: connectionEvents, revents: 0)) }
            // The output is watched even with nothing to write: its reader going away (a pipe
            // reports POLLERR) ends the relay, rather than a wait on the server for as long as
            // TCP takes to give up on it.
            watched.append(pollfd(fd: output, events: downstream.isEmpty ? 0 : Int16(POLLOUT), revents: 0))

            let ready = watched.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), -1) }
            if ready < 0 {
                if errno == EINTR { continue }
                throw Failure(call: "poll", errno: errno)
            }
            // Whatever poll reported (data, hang-up, error), the read or write below says
            // which; a descriptor that is not ready answers EAGAIN and is polled again.
            let woken = Set(watched.filter { $0.revents != 0 }.map(\.fd))

            if woken.contains(input), upstream.isEmpty, !upstream.sourceEnded {
                try upstream.fill(from: input, call: "read") { read(input, $0, $1) }
                if upstream.sourceEnded && upstream.isEmpty { try shutDownSending() }
            }
            if woken.contains(connection) {
                if !upstream.isEmpty {
                    let accepted = try upstream.drain(call: "send") { send(connection, $0, $1, Int32(MSG_NOSIGNAL)) }
                    if !accepted {
                        // The server takes no more; stop reading input, keep reading the server.
                        upstream.discard()
                    } else if upstream.sourceEnded && upstream.isEmpty {
                        try shutDownSending()
                    }
                }
                if downstream.isEmpty {
                    try downstream.fill(from: connection, call: "recv") { recv(connection, $0, $1, 0) }
                    if downstream.sourceEnded && downstream.isEmpty { return .connectionClosed }
                }
            }
            if woken.contains(output) {
                if downstream.isEmpty {
                    if watched.contains(where: { $0.fd == output && $0.revents & Int16(POLLERR | POLLHUP) != 0 }) { return .outputClosed }
                } else {
                    guard try downstream.drain(call: "write", { write(output, $0, $1) }) else { return .outputClosed }
                    if downstream.sourceEnded && downstream.isEmpty { return .connectionClosed }
                }
            }
        }
    }

    private func shutDownSending() throws(Failure) {
        if shutdown(connection, Int32(SHUT_WR)) != 0, errno != ENOTCONN {
            throw Failure(call: "shutdown", errno: errno)
        }
    }

    /// The bytes read from one side and not yet written to the other.
    private struct Direction {
        var buffer: [UInt8]
        var start = 0
        var end = 0
        /// The source reached end of stream (or can no longer be written on to).
        var sourceEnded = false

        init(capacity: Int) { buffer = [UInt8](repeating: 0, count: capacity) }

        var isEmpty: Bool { start == end }

        /// One read into the empty buffer. End of stream sets `sourceEnded`; `EAGAIN` and
        /// `EINTR` leave it as it was, to be polled again.
        mutating func fill(from descriptor: Int32, call: String, _ body: (UnsafeMutableRawPointer, Int) -> Int) throws(Failure) {
            let count = buffer.withUnsafeMutableBytes { body($0.baseAddress!, $0.count) }
            if count > 0 {
                start = 0
                end = count
            } else if count == 0 {
                sourceEnded = true
            } else if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
                throw Failure(call: call, errno: errno)
            }
        }

        /// One write of what the buffer holds; a partial write leaves the rest for the next.
        /// False when the other side is gone (`EPIPE`).
        mutating func drain(call: String, _ body: (UnsafeRawPointer, Int) -> Int) throws(Failure) -> Bool {
            let count = buffer.withUnsafeBytes { body($0.baseAddress! + start, end - start) }
            if count >= 0 {
                start += count
                return true
            }
            switch errno {
            case EAGAIN, EWOULDBLOCK, EINTR: return true
            case EPIPE: return false
            case let code: throw Failure(call: call, errno: code)
            }
        }

        /// Drops what is held and reads no more: the destination is gone.
        mutating func discard() {
            start = 0
            end = 0
            sourceEnded = true
        }
    }
}
