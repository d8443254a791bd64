import Foundation

/// The thread, the count and the stop of a test's flood: `start` runs `body` inside
/// `namespace` on a thread of its own; `finish` waits for it to end by its own bounds, `stop`
/// asks it to end early and waits. The flood's own type decides what a packet is.
final class BackgroundFlood: @unchecked Sendable {
    let namespace: NetworkNamespace
    private let lock = NSLock()
    private var stopping = false
    private var running = false
    private var sent = 0
    private let finished = DispatchSemaphore(value: 0)

    init(namespace: NetworkNamespace) { self.namespace = namespace }

    var packetsSent: Int { lock.withLock { sent } }
    /// Whether `stop` was called: the body checks it between packets.
    var isStopping: Bool { lock.withLock { stopping } }
    func countSent() { lock.withLock { sent += 1 } }

    func start(_ body: @escaping @Sendable (BackgroundFlood) -> Void) {
        lock.withLock { running = true }
        Thread.detachNewThread { [self] in
            defer { finished.signal() }
            _ = try? namespace.perform { [self] in body(self) }
        }
    }

    /// Waits for the flood to end by itself, at its bounds.
    func finish() {
        let wasRunning = lock.withLock { () -> Bool in
            defer { running = false }
            return running
        }
        if wasRunning { finished.wait() }
    }

    /// Stops the flood and waits for its thread; safe to call more than once.
    func stop() {
        let wasRunning = lock.withLock { () -> Bool in
            stopping = true
            defer { running = false }
            return running
        }
        if wasRunning { finished.wait() }
    }
}
