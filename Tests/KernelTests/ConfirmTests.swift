import Foundation
import Glibc
import KnockCore
@testable import KnockTestSupport
import Testing

/// `apply --confirm`: the new table stays only when confirmed; otherwise the previous one
/// comes back exactly, with its grants, whatever happens to the processes, the clock or the
/// disk in between.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct ConfirmTests {
    /// Not under /tmp: one test mounts a file system of its own there.
    let runDirectory = URL(fileURLWithPath: "/run/knockc-test-\(getpid())-\(UUID().uuidString)")

    var environment: [String: String] {
        ProcessInfo.processInfo.environment.merging(["KNOCKC_RUN_DIR": runDirectory.path]) { $1 }
    }

    /// A knockc started in the background, its stdout and stderr kept in files to poll.
    /// Spawned and reaped with posix_spawn and waitpid: Foundation's Process was seen to leave
    /// a killed child unreaped here, so that waitUntilExit never returned.
    final class Started {
        let pid: pid_t
        let output: URL
        let errors: URL
        private var status: Int32?

        init(_ arguments: [String], environment: [String: String], directory: URL) throws {
            output = directory.appendingPathComponent("out-\(UUID().uuidString)")
            errors = directory.appendingPathComponent("err-\(UUID().uuidString)")
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, output.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            posix_spawn_file_actions_addopen(&actions, 2, errors.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            let argv = (["/usr/bin/env"] + arguments).map { strdup($0) } + [nil]
            let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
            defer { (argv + envp).forEach { free($0) } }
            var pid: pid_t = 0
            let result = posix_spawn(&pid, "/usr/bin/env", &actions, nil, argv, envp)
            guard result == 0 else { throw ProgramFailure(description: "cannot start \(arguments): \(result)") }
            self.pid = pid
        }

        deinit {
            if status == nil {
                kill(pid, SIGKILL)
                var raw: Int32 = 0
                waitpid(pid, &raw, 0)
            }
        }

        var printed: String { (try? String(contentsOf: output, encoding: .utf8)) ?? "" }
        var complained: String { (try? String(contentsOf: errors, encoding: .utf8)) ?? "" }

        /// Waits for the apply to say the new table is live and pending.
        func awaitPending() throws -> Bool {
            eventually(within: 20) { printed.contains("run `knockc confirm") }
        }

        /// The exit status once it ends within `seconds`; nil if it is still running.
        func exitStatus(within seconds: Double) throws -> Int32? {
            _ = eventually(within: seconds) { reap(blocking: false) != nil }
            return status
        }

        func kill9() -> Int32? {
            kill(pid, SIGKILL)
            return reap(blocking: true)
        }

        func waitForExit() -> Int32? { reap(blocking: true) }

        @discardableResult
        private func reap(blocking: Bool) -> Int32? {
            if let status { return status }
            var raw: Int32 = 0
            var result: pid_t
            repeat { result = waitpid(pid, &raw, blocking ? 0 : WNOHANG) } while result == -1 && errno == EINTR
            guard result == pid else { return nil }
            status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
            return status
        }
    }

    func start(in namespace: NetworkNamespace, _ arguments: [String], prefix: [String] = []) throws -> Started {
        try FileManager.default.createDirectory(at: runDirectory, withIntermediateDirectories: true)
        return try Started(["ip", "netns", "exec", namespace.name] + prefix + [CommandLineTests.knockc] + arguments,
                           environment: environment, directory: runDirectory)
    }

    func knockc(in namespace: NetworkNamespace, _ arguments: [String], prefix: [String] = []) throws -> (status: Int32, output: String, error: String) {
        let started = try start(in: namespace, arguments, prefix: prefix)
        let status = started.waitForExit() ?? -1
        return (status, started.printed, started.complained)
    }

    func definitions(_ bed: Testbed) throws -> String {
        ListingNormalizer.definitions(try runProgram(["ip", "netns", "exec", bed.server.name, "nft", "list", "table", "inet", "knockc"], allowFailure: true).output)
    }

    /// The pending record knockc keeps for the server's namespace, as JSON.
    func record() throws -> [String: Any]? {
        let files = try runProgram(["find", runDirectory.path, "-name", "knockc.pending"]).output
        guard let path = files.split(separator: "\n").first,
              let data = FileManager.default.contents(atPath: String(path)) else { return nil }
        return try JSONSerialization.jsonObject(with: data) as? [String: Any]
    }

    func reverterPID() throws -> pid_t? {
        ((try record()?["reverter"] as? [String: Any])?["pid"] as? Int).map { pid_t($0) }
    }

    func phase() throws -> String? { try record()?["phase"] as? String }

    /// Processes still running in `namespace` (a reverter left behind would be one).
    func processes(in namespace: NetworkNamespace) throws -> [String] {
        try runProgram(["ip", "netns", "pids", namespace.name]).output.split(separator: "\n").map(String.init)
    }

    /// Whether `pid` has ended: no such process, or a zombie nobody reaps (an orphaned
    /// reverter is reparented to a process that may never wait for it).
    func isGone(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(after: close)...].split(separator: " ").first == "Z"
    }

    /// Applies ssh.yaml plainly; returns the table's definitions, which a revert must bring back.
    func applyPrevious(_ bed: Testbed) throws -> String {
        let applied = try knockc(in: bed.server, ["apply", CommandLineTests.ssh])
        try #require(applied.status == 0, "\(applied.error)")
        return try definitions(bed)
    }

    /// Starts `apply several.yaml --confirm WINDOW` and waits until its table is live and
    /// pending; returns it with its reverter's pid.
    func startPending(_ bed: Testbed, window: String) throws -> (apply: Started, reverter: pid_t) {
        let apply = try start(in: bed.server, ["apply", CommandLineTests.several, "--confirm", window])
        try #require(try apply.awaitPending())
        return (apply, try #require(try reverterPID()))
    }

    /// `status --json`'s `pending_confirm.reverts_in_seconds`; nil when it is null.
    func pendingConfirm(_ bed: Testbed) throws -> Int? {
        let status = try knockc(in: bed.server, ["status", "--json"])
        try #require(status.status == 0, "\(status.error)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(status.output.utf8)) as? [String: Any])
        try #require(object.keys.contains("pending_confirm") && object["grants"] != nil, "\(status.output)")
        return (object["pending_confirm"] as? [String: Any])?["reverts_in_seconds"] as? Int
    }

    func cleanUp() {
        try? FileManager.default.removeItem(at: runDirectory)
    }

    @Test("without confirm the previous table comes back with its grants, even when the applying process is killed")
    func revertsWithoutConfirmation() throws {
        defer { cleanUp() }
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            #expect(try knockc(in: bed.server, ["apply", CommandLineTests.ssh]).status == 0)
            try bed.client.knock(Testbed.serverV4, [.tcp(7000), .udp(9000), .tcp(8000)])
            let before = try definitions(bed)

            let apply = try start(in: bed.server, ["apply", CommandLineTests.several, "--confirm", "2s"])
            try #require(try apply.awaitPending())
            #expect(try definitions(bed) != before, "the new table is live while pending")
            // The terminal is gone: the revert must not depend on the applying process.
            _ = apply.kill9()

            #expect(try eventually(within: 10) { try definitions(bed) == before })
            // The reverter restores the kernel first and writes the record after.
            #expect(try eventually(within: 5) { try phase() == "reverted" })
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected, "the grant survived both applies")
            _ = listener
        }
    }

    @Test("apply --confirm exits 5 when not confirmed, and 0 with the new table live when confirmed")
    func confirmKeepsTheNewTable() throws {
        defer { cleanUp() }
        try Testbed.with { bed in
            let before = try applyPrevious(bed)
            #expect(try knockc(in: bed.server, ["apply", CommandLineTests.several, "--confirm", "1s"]).status == 5)
            #expect(try definitions(bed) == before)

            let apply = try start(in: bed.server, ["apply", CommandLineTests.several, "--confirm", "30s"])
            try #require(try apply.awaitPending())
            #expect(try definitions(bed).contains("admin-web"), "the new table is live while pending")
            #expect(try pendingConfirm(bed).map { (1...30).contains($0) } == true, "status --json carries the pending apply")
            let confirmed = try knockc(in: bed.server, ["confirm"])
            #expect(confirmed.status == 0, "\(confirmed.error)")
            #expect(try pendingConfirm(bed) == nil, "status --json: nothing pending once confirmed")
            #expect(try apply.exitStatus(within: 10) == 0)
            #expect(try definitions(bed).contains("admin-web"))
            #expect(try knockc(in: bed.server, ["confirm"]).status == 1, "nothing left to confirm")
            // The confirmed spec is now the record a later --confirm restores.
            let next = try knockc(in: bed.server, ["apply", CommandLineTests.ssh, "--confirm", "1s"])
            #expect(next.status == 5, "\(next.error)")
            #expect(try definitions(bed).contains("admin-web"))
        }
    }

    @Test("with no table before, an unconfirmed apply leaves no table")
    func revertToNothing() throws {
        defer { cleanUp() }
        try Testbed.with { bed in
            #expect(try knockc(in: bed.server, ["apply", CommandLineTests.ssh, "--confirm", "1s"]).status == 5)
            let ruleset = try bed.serverRuleset()
            #expect(!ruleset.contains("table inet knockc"))
        }
    }

    @Test("a window shorter than the install never leaves the new table live: the window starts when the table is installed")
    func tinyWindowReverts() throws {
        defer { cleanUp() }
        try Testbed.with { bed in
            let before = try applyPrevious(bed)
            for _ in 0..<3 {
                let result = try knockc(in: bed.server, ["apply", CommandLineTests.several, "--confirm", "1ms"])
                #expect(result.status == 5, "\(result.error)")
                #expect(try definitions(bed) == before, "the new table stayed live: \(result.error)")
            }
        }
    }

    @Test("a reverter asked to stop (SIGTERM, as at logout) restores the previous table at once instead of dying")
    func terminatedReverterReverts() throws {
        defer { cleanUp() }
        try Testbed.with { bed in
            let before = try applyPrevious(bed)
            let (apply, reverter) = try startPending(bed, window: "10m")
            kill(reverter, SIGTERM)
            #expect(try apply.exitStatus(within: 10) == 5)
            #expect(try definitions(bed) == before)
            #expect(apply.complained.contains("asked to stop"), "\(apply.complained)")
        }
    }

    @Test("with the state directory removed or made read-only while pending, the previous table still comes back and apply ends")
    func stateDirectoryLostWhilePending() throws {
        defer { cleanUp() }
        try Testbed.with { bed in
            let before = try applyPrevious(bed)
            let result = try shell(in: bed.server, """
                mount -t tmpfs -o mode=0700 tmpfs "$KNOCKC_RUN_DIR" || exit 99
                "$1" apply "$2" >/dev/null || exit 98
                "$1" apply "$3" --confirm 2s >"$KNOCKC_RUN_DIR/out" 2>&1 &
                apply=$!
                for i in $(seq 100); do grep -q "knockc confirm" "$KNOCKC_RUN_DIR/out" && break; sleep 0.1; done
                mount -o remount,ro "$KNOCKC_RUN_DIR"
                for i in $(seq 150); do kill -0 $apply 2>/dev/null || break; sleep 0.1; done
                if kill -0 $apply 2>/dev/null; then kill -9 $apply; echo "apply still running"; fi
                wait $apply; echo "status=$?"
                """, [CommandLineTests.ssh, CommandLineTests.several])
            #expect(result.output.contains("status=5"), "\(result.output)\(result.error)")
            #expect(try definitions(bed) == before, "read-only state directory: the new table stayed")

            let removed = try start(in: bed.server, ["apply", CommandLineTests.several, "--confirm", "10m"])
            try #require(try removed.awaitPending())
            let records = try runProgram(["find", runDirectory.path, "-name", "knockc.*"]).output.split(separator: "\n")
            for path in records { unlink(String(path)) }
            #expect(try removed.exitStatus(within: 15) == 5, "\(removed.complained)")
            #expect(try eventually(within: 5) { try definitions(bed) == before }, "removed state: the new table stayed")
        }
    }

    @Test("a killed reverter is noticed by the waiting apply, which restores the previous table at once and exits 5")
    func killedReverterSeenByApply() throws {
        defer { cleanUp() }
        try Testbed.with { bed in
            let before = try applyPrevious(bed)
            let (apply, reverter) = try startPending(bed, window: "10m")
            kill(reverter, SIGKILL)
            #expect(try apply.exitStatus(within: 10) == 5, "apply must not wait for a dead reverter")
            #expect(apply.complained.contains("reverter (pid \(reverter)) died"), "\(apply.complained)")
            #expect(try definitions(bed) == before)
            #expect(try phase() == "reverted")
            #expect(try knockc(in: bed.server, ["confirm"]).status == 1, "a late confirm does not succeed")
        }
    }

    @Test("with the apply and its reverter both killed, the next status restores the previous table and says so")
    func killedReverterSeenByStatus() throws {
        defer { cleanUp() }
        try Testbed.with { bed in
            let before = try applyPrevious(bed)
            let (apply, reverter) = try startPending(bed, window: "10m")
            _ = apply.kill9()
            kill(reverter, SIGKILL)
            #expect(eventually(within: 5) { isGone(reverter) })
            #expect(try phase() == "pending", "nothing has noticed yet")

            let status = try knockc(in: bed.server, ["status"])
            #expect(status.error.contains("its reverter (pid \(reverter)) died before the deadline, so the previous table was restored"), "\(status.error)")
            #expect(try phase() == "reverted")
            #expect(try definitions(bed) == before)
            // And apply is not refused as if something were still pending.
            #expect(try knockc(in: bed.server, ["apply", CommandLineTests.several]).status == 0)
        }
    }

    @Test("a confirm after the deadline of a dead reverter does not keep the new table: it restores the previous one and exits 1")
    func lateConfirmRestores() throws {
        defer { cleanUp() }
        try Testbed.with { bed in
            let before = try applyPrevious(bed)
            let (apply, reverter) = try startPending(bed, window: "2s")
            _ = apply.kill9()
            kill(reverter, SIGKILL)
            // Past the 2 s deadline, with nobody left to revert.
            let deadline = Date().addingTimeInterval(2.5)
            while Date() < deadline { usleep(100_000) }
            let confirm = try knockc(in: bed.server, ["confirm"])
            #expect(confirm.status == 1)
            #expect(confirm.error.contains("too late"), "\(confirm.error)")
            #expect(try definitions(bed) == before)
        }
    }

    /// An LD_PRELOAD library that moves this process's wall clock (CLOCK_REALTIME,
    /// gettimeofday, time) by the seconds written in $WALLCLOCK_OFFSET_FILE, re-read on every
    /// call, and leaves every other clock alone: the machine's own clock is never set.
    /// (libfaketime does the same, but under it a Swift program's arguments read as empty.)
    static let wallClockShift = """
        #define _GNU_SOURCE
        #include <dlfcn.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <sys/time.h>
        #include <time.h>
        static long offset(void) {
            const char *path = getenv("WALLCLOCK_OFFSET_FILE");
            FILE *file = path ? fopen(path, "re") : NULL;
            long seconds = 0;
            if (file) { if (fscanf(file, "%ld", &seconds) != 1) seconds = 0; fclose(file); }
            return seconds;
        }
        int clock_gettime(clockid_t clock, struct timespec *time) {
            static int (*real)(clockid_t, struct timespec *);
            if (!real) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
            int result = real(clock, time);
            if (result == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE)) time->tv_sec += offset();
            return result;
        }
        int gettimeofday(struct timeval *value, void *zone) {
            struct timespec now;
            (void)zone;
            clock_gettime(CLOCK_REALTIME, &now);
            if (value) { value->tv_sec = now.tv_sec; value->tv_usec = now.tv_nsec / 1000; }
            return 0;
        }
        time_t time(time_t *out) {
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            if (out) *out = now.tv_sec;
            return now.tv_sec;
        }
        """

    @Test("the window is measured on the boot clock: moving the wall clock forward 10 minutes or back an hour does not move the revert")
    func wallClockJumpsDoNotMoveTheDeadline() throws {
        defer { cleanUp() }
        try FileManager.default.createDirectory(at: runDirectory, withIntermediateDirectories: true)
        let source = runDirectory.appendingPathComponent("wallclock.c")
        let library = runDirectory.appendingPathComponent("wallclock.so")
        try Self.wallClockShift.write(to: source, atomically: true, encoding: .utf8)
        try runProgram(["cc", "-shared", "-fPIC", "-O1", "-o", library.path, source.path, "-ldl"])
        let offset = runDirectory.appendingPathComponent("offset")
        try "0".write(to: offset, atomically: true, encoding: .utf8)
        // The shift reaches every knockc process, the detached reverter too.
        let shifted = ["env", "LD_PRELOAD=\(library.path)", "WALLCLOCK_OFFSET_FILE=\(offset.path)"]
        let probe = try runProgram(shifted + ["sh", "-c", "echo 600 > \(offset.path); date +%s; echo 0 > \(offset.path)"]).output
        let shift = (Double(probe.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) - Date().timeIntervalSince1970
        try #require(shift > 500, "the shift library moves the wall clock (\(shift) s)")

        try Testbed.with { bed in
            let before = try applyPrevious(bed)
            let started = Date()
            let apply = try start(in: bed.server, ["apply", CommandLineTests.several, "--confirm", "6s"], prefix: shifted)
            try #require(try apply.awaitPending())

            try "600".write(to: offset, atomically: true, encoding: .utf8)
            // A wall-clock deadline would now be 10 minutes past: the revert would follow at once.
            let quiet = Date().addingTimeInterval(max(0, min(2, 5 - Date().timeIntervalSince(started))))
            while Date() < quiet {
                #expect(try phase() == "pending", "reverted after a forward jump of the wall clock")
                usleep(100_000)
            }
            try "-3600".write(to: offset, atomically: true, encoding: .utf8)
            // A wall-clock deadline would now be an hour away.
            #expect(try apply.exitStatus(within: 15) == 5, "not reverted after a backward jump of the wall clock")
            #expect(Date().timeIntervalSince(started) >= 5.5, "reverted before the window ended")
            #expect(try definitions(bed) == before)
        }
    }

    /// Runs `script` as root in `namespace`, in a mount namespace of its own (so tmpfs and
    /// read-only mounts it makes never reach the host), with $1 the knockc binary.
    func shell(in namespace: NetworkNamespace, _ script: String, _ arguments: [String] = []) throws -> (status: Int32, output: String, error: String) {
        try FileManager.default.createDirectory(at: runDirectory, withIntermediateDirectories: true)
        return try runProgram(["ip", "netns", "exec", namespace.name, "env", "KNOCKC_RUN_DIR=\(runDirectory.path)",
                               "unshare", "-m", "sh", "-c", script, "sh", CommandLineTests.knockc] + arguments, allowFailure: true)
    }

    @Test("with the state directory full, apply --confirm fails before installing anything, naming the file and the error, and leaves no reverter")
    func fullStateDirectory() throws {
        defer { cleanUp() }
        try Testbed.with { bed in
            let before = try applyPrevious(bed)
            let result = try shell(in: bed.server, """
                mount -t tmpfs -o size=64k,mode=0700 tmpfs "$KNOCKC_RUN_DIR" || exit 99
                "$1" apply "$2" >/dev/null || exit 98
                dd if=/dev/zero of="$KNOCKC_RUN_DIR/fill" bs=4k 2>/dev/null
                "$1" apply "$3" --confirm 30s
                """, [CommandLineTests.ssh, CommandLineTests.several])
            #expect(result.status == 1, "\(result.error)")
            #expect(result.error.contains("No space left on device"), "\(result.error)")
            #expect(result.error.contains(".previous.yaml"), "names the file: \(result.error)")
            #expect(!result.error.contains("NSCocoaErrorDomain"))
            #expect(!result.output.contains("applied"), "nothing was installed: \(result.output)")
            #expect(try definitions(bed) == before)
            #expect(try processes(in: bed.server).isEmpty, "no reverter left running")
        }
    }

    @Test("a plain apply during a pending confirm is refused; with --force it ends the pending confirm, which then never reverts")
    func plainApplyDuringPendingConfirm() throws {
        defer { cleanUp() }
        try Testbed.with { bed in
            #expect(try knockc(in: bed.server, ["apply", CommandLineTests.ssh]).status == 0)
            let apply = try start(in: bed.server, ["apply", CommandLineTests.several, "--confirm", "3s"])
            try #require(try apply.awaitPending())
            let during = try definitions(bed)

            let refused = try knockc(in: bed.server, ["apply", CommandLineTests.ssh])
            #expect(refused.status == 1)
            #expect(refused.error.contains("waiting for confirmation") && refused.error.contains("--force"), "\(refused.error)")
            #expect(try definitions(bed) == during, "a refused apply changes nothing")

            let forced = try knockc(in: bed.server, ["apply", CommandLineTests.ssh, "--force"])
            #expect(forced.status == 0, "\(forced.error)")
            #expect(forced.error.contains("ended the pending apply --confirm"), "\(forced.error)")
            let afterForce = try definitions(bed)
            #expect(!afterForce.contains("admin-web"))
            #expect(try apply.exitStatus(within: 10) == 0)
            #expect(apply.complained.contains("--force"), "\(apply.complained)")
            // Past the old deadline nothing reverts the forced apply.
            let deadline = Date().addingTimeInterval(3.5)
            while Date() < deadline { usleep(100_000) }
            #expect(try definitions(bed) == afterForce)
            #expect(try processes(in: bed.server).isEmpty, "the reverter has exited")
        }
    }

    @Test("a killed apply leaves no file behind, and the temporaries of killed writers are swept by the next run")
    func killedApplyLeavesNothing() throws {
        defer { cleanUp() }
        try Testbed.with { bed in
            // A spec large enough that an apply takes a while to be killed in.
            let spec = runDirectory.appendingPathComponent("big.yaml")
            try FileManager.default.createDirectory(at: runDirectory, withIntermediateDirectories: true)
            var yaml = "sequences:\n"
            for index in 0..<2000 {
                yaml += "  s\(index):\n    knock: [tcp/\(10_000 + index), udp/\(20_000 + index), tcp/\(30_000 + index)]\n    open: [tcp/22]\n"
            }
            try yaml.write(to: spec, atomically: true, encoding: .utf8)
            #expect(try knockc(in: bed.server, ["apply", CommandLineTests.ssh]).status == 0)
            // Run in a mount namespace whose /tmp is an empty file system of its own: whatever
            // knockc writes there shows.
            let result = try shell(in: bed.server, """
                # The build may live under /tmp (a CI clone): run a copy from elsewhere.
                cp "$1" "$KNOCKC_RUN_DIR/knockc-copy" && set -- "$KNOCKC_RUN_DIR/knockc-copy" "$2"
                mount -t tmpfs tmpfs /tmp || exit 99
                for delay in 0.05 0.2 0.5 1; do
                    "$1" apply "$2" >/dev/null 2>&1 & pid=$!
                    sleep $delay; kill -9 $pid; wait $pid
                done
                "$1" apply "$2" --confirm 1s >/dev/null 2>&1 & pid=$!
                sleep 0.5; kill -9 $pid; wait $pid
                ls -A /tmp
                """, [spec.path])
            #expect(result.output.isEmpty, "left in /tmp: \(result.output)")

            // A temporary of a writer that died, and the directory of a namespace that is gone.
            let ours = try runProgram(["find", runDirectory.path, "-mindepth", "1", "-maxdepth", "1", "-type", "d"]).output
                .split(separator: "\n").map(String.init).first { !$0.hasSuffix("big.yaml") }
            let directory = try #require(ours)
            // No process has this pid: it is above any pid_max.
            let stale = "\(directory)/.knockc.yaml.tmp.2147483646"
            _ = FileManager.default.createFile(atPath: stale, contents: Data("old".utf8))
            let vanished = runDirectory.appendingPathComponent("4242").path
            try FileManager.default.createDirectory(atPath: vanished, withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: vanished + "/knockc.yaml", contents: Data("old".utf8))

            #expect(try knockc(in: bed.server, ["apply", CommandLineTests.ssh]).status == 0)
            #expect(!FileManager.default.fileExists(atPath: stale), "the stale temporary is swept")
            #expect(!FileManager.default.fileExists(atPath: vanished), "the vanished namespace's record is swept")
        }
    }

    @Test("records are keyed so that a new namespace reusing an old one's inode does not inherit its pending confirm")
    func reusedNamespaceInodeStartsClean() throws {
        defer { cleanUp() }
        try Testbed.with { bed in
            #expect(try knockc(in: bed.server, ["apply", CommandLineTests.ssh]).status == 0)
            let directory = try #require(try runProgram(["find", runDirectory.path, "-name", "netns-cookie"]).output
                .split(separator: "\n").first.map { URL(fileURLWithPath: String($0)).deletingLastPathComponent() })
            // As an earlier namespace with the same inode would have left it: another cookie,
            // its own record and a pending confirm.
            try "1\n".write(to: directory.appendingPathComponent("netns-cookie"), atomically: true, encoding: .utf8)
            let record = #"{"bootID":"x","deadline":0,"phase":"pending","windowMilliseconds":1000}"#
            try record.write(to: directory.appendingPathComponent("knockc.pending"), atomically: true, encoding: .utf8)

            let confirm = try knockc(in: bed.server, ["confirm"])
            #expect(confirm.status == 1, "nothing of the old namespace is confirmed")
            #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("knockc.pending").path))
            #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("knockc.yaml").path), "its record is gone too")
        }
    }

    @Test("without root, apply and confirm say what is not permitted and exit 6")
    func notRoot() throws {
        defer { cleanUp() }
        try Testbed.with { bed in
            let nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
            let apply = try knockc(in: bed.server, ["apply", CommandLineTests.ssh], prefix: nobody)
            #expect(apply.status == 6, "\(apply.error)")
            #expect(apply.error.contains("needs root (CAP_NET_ADMIN)"), "\(apply.error)")
            let confirm = try knockc(in: bed.server, ["confirm"], prefix: nobody)
            #expect(confirm.status == 6, "\(confirm.error)")
            #expect(confirm.error.contains(runDirectory.path), "names what was not permitted: \(confirm.error)")
            #expect(!confirm.error.contains("NSCocoaErrorDomain"))
        }
    }

    @Test("a plain apply with a read-only state directory applies and warns that it could not record the spec")
    func readOnlyStateDirectoryWarns() throws {
        defer { cleanUp() }
        try Testbed.with { bed in
            let result = try shell(in: bed.server, """
                mount --bind "$KNOCKC_RUN_DIR" "$KNOCKC_RUN_DIR" && mount -o remount,bind,ro "$KNOCKC_RUN_DIR" || exit 99
                "$1" apply "$2"
                """, [CommandLineTests.ssh])
            #expect(result.status == 0, "\(result.error)")
            #expect(result.error.contains("warning") && result.error.contains("Read-only file system"), "\(result.error)")
            #expect(try definitions(bed).contains("ssh"))
        }
    }
}
