import Glibc

/// Gives memory that glibc's malloc keeps after a burst back to the system.
///
/// Reading 10,000 new grants at once (the first reading, or an apply) grows dictionaries in
/// steps; glibc raises its mmap threshold as the old storage is freed and keeps the freed
/// pages in the heap, which left the watcher at 26 MiB of anonymous memory where 5 would
/// do. `malloc_trim` returns them. Found with dlsym: Swift's Glibc module does not export
/// malloc.h, and on another libc this is simply a no-op.
enum HeapTrim {
    private typealias Trim = @convention(c) (Int) -> Int32

    private static let trim: Trim? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim")
        .map { unsafeBitCast($0, to: Trim.self) }

    static func release() {
        _ = trim?(0)
    }
}
