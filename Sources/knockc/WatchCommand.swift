import ArgumentParser
import Foundation
import KnockCore
import KnockKernel
import KnockWatch
import Logging

struct WatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Report grants, expiries and early ends as JSON lines, run hooks, serve metrics (never in the packet path).",
        discussion: """
            Reads the table's granted sets every --interval and prints one JSON object per \
            line on stdout for each change: {"event": "grant"|"expire"|"end", "source", \
            "family", "ports", "sequences", "expires_at", "time"}, and "reason" for expire \
            ("timeout") and end ("close", "revoke", "apply" or "used") events. "end" is a grant that \
            went before its time. The same events go to stderr as log lines.

            With SPEC, the spec's on_grant and on_expire hooks run for each event (on_expire \
            also for ends), without a shell, with the event in KNOCKC_EVENT, KNOCKC_SOURCE, \
            KNOCKC_FAMILY, KNOCKC_SEQUENCE, KNOCKC_PORTS, KNOCKC_EXPIRES_AT, KNOCKC_REASON, \
            KNOCKC_TIME and KNOCKC_TABLE. A hook that runs past hook_timeout is stopped; a \
            failing hook is logged. The spec is read again whenever an apply replaces the table. \
            Every minute and after each apply, it also checks that the table holds the \
            current window of each spa and rotate sequence as its secret file derives it now, \
            and logs an error when a secret changed after the last apply.

            --metrics ADDR:PORT serves Prometheus text on http://ADDR:PORT/metrics: grants \
            and closes per sequence and wrong knocks and bans as the kernel counted them, \
            expiries per sequence, and active grants and bans. It holds at most 256 \
            connections (a new one closes the oldest) and gives each 5 s from accept to the \
            end of its response.

            --metrics-textfile PATH writes the same text to PATH for node_exporter's textfile \
            collector (name it *.prom), replacing it whole by a rename after each poll that \
            changed it, and at least every 60 s; it needs no listening socket.

            The kernel decides who gets in; killing the watcher changes nothing for knocking. \
            On start it reads the live sets and reports nothing that already existed, and it \
            keeps working across `knockc apply`. Under systemd (Type=notify) it sends READY=1 \
            once it has read the table and bound the metrics port.
            """
    )

    @Argument(help: "The knock spec whose hooks to run, and whose table to watch.",
              completion: .file(extensions: ["yaml", "yml"]))
    var spec: String?

    @Option(help: "The table, as the spec's `table:` names it (default: the spec's, else knockc).")
    var table: String?

    @Option(help: "How often to read the sets, as 250ms; events arrive within this much of the kernel's change.")
    var interval: String = "500ms"

    @Option(help: "Serve Prometheus metrics on this numeric address and port, as 127.0.0.1:9464 or [::1]:9464. Off by default.")
    var metrics: String?

    @Option(help: "Write the metrics to this file for node_exporter's textfile collector, replaced atomically. Off by default.",
            completion: .file(extensions: ["prom"]))
    var metricsTextfile: String?

    @Option(help: "Log level on stderr: trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func validate() throws {
        if let table, !NameRules.isValidTableName(table) { throw ValidationError("'\(table)' is not a table name.") }
        guard let duration = Duration(parsing: interval), duration.milliseconds >= 10, duration <= .seconds(60) else {
            throw ValidationError("'\(interval)' is not an interval from 10ms to 60s.")
        }
        if let metrics, MetricsServer.Endpoint(metrics) == nil {
            throw ValidationError("'\(metrics)' is not ADDRESS:PORT with a numeric address, as 127.0.0.1:9464 or [::1]:9464.")
        }
        if let metricsTextfile {
            var isDirectory: ObjCBool = false
            let directory = URL(fileURLWithPath: metricsTextfile).deletingLastPathComponent().path
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ValidationError("'\(directory)', the directory of --metrics-textfile, does not exist.")
            }
            if FileManager.default.fileExists(atPath: metricsTextfile, isDirectory: &isDirectory), isDirectory.boolValue {
                throw ValidationError("'\(metricsTextfile)' is a directory; --metrics-textfile takes a file name, as DIR/knockc.prom.")
            }
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("'\(logLevel)' is not a log level.") }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel)!
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "knockc.watch")

        var tableName = table ?? KnockSpec.defaultTableName
        var hookTimeout = HookCommand.defaultTimeout
        if let spec {
            let loaded = try SpecOptions(spec: spec).load()
            if let table, table != loaded.tableName {
                throw ValidationError("the spec names table '\(loaded.tableName)', not '\(table)'.")
            }
            tableName = loaded.tableName
            hookTimeout = loaded.hookTimeout
        }

        let watcher: Watcher
        let live: Int?
        do {
            watcher = try Watcher(
                table: tableName, specFile: spec,
                hooks: spec.map { _ in HookRunner(timeout: hookTimeout, logger: logger) },
                logger: logger,
                emit: { line in
                    // Unbuffered, so a pipe sees each event as it happens.
                    FileHandle.standardOutput.write(Data((line + "\n").utf8))
                })
            live = try watcher.start()
        } catch {
            Console.error("knockc: cannot read table inet \(tableName): \(error)")
            throw ExitCode(1)
        }

        var server: MetricsServer?
        if let metrics, let endpoint = MetricsServer.Endpoint(metrics) {
            let counters = watcher.kernelCounters
            let state = watcher.metrics
            do {
                server = try MetricsServer(endpoint: endpoint) {
                    PrometheusText.render(state.families(kernelCounters: counters.packets()))
                }
            } catch {
                Console.error("knockc: \(error)")
                throw ExitCode(1)
            }
        }
        var textfile = metricsTextfile.map { MetricsTextfile(path: $0) }
        if var file = textfile {
            // At once, so a path that cannot be written is an error at startup.
            do {
                try file.update(watcher.metricsText())
            } catch {
                Console.error("knockc: \(error)")
                throw ExitCode(1)
            }
            textfile = file
        }
        if let live {
            logger.info("watching table inet \(tableName)", metadata: ["grants": "\(live)", "metrics": "\(server?.endpoint.description ?? "off")",
                                                                    "metrics_textfile": "\(metricsTextfile ?? "off")"])
        } else {
            logger.warning("table inet \(tableName) does not exist yet; watching for it")
        }
        SystemdNotifier.notify("READY=1\nSTATUS=watching table inet \(tableName)")
        watcher.run(interval: Duration(parsing: interval)!, textfile: textfile)
    }
}

extension SpecOptions {
    init(spec: String) {
        self.init()
        self.spec = spec
    }
}
