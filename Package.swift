// swift-tools-version:6.0
import PackageDescription

// Stages live in KnockCore (spec → model → IR → text); KnockKernel is the only target that
// touches libnftables; KnockClient sends knocks; KnockWatch reports what the kernel did;
// KnockSecrets reads and writes secrets and derives rotating knocks and SPA tokens from them;
// `knockc` is the thin command line on top.
let package = Package(
    name: "knockc",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "knockc", targets: ["knockc"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // The watcher's log lines on stderr; the one logging API servers in Swift share.
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CNftables",
            pkgConfig: "libnftables",
            providers: [.apt(["libnftables-dev"])]
        ),
        // YAML's events, composed by KnockCore's YAMLComposer, the one file that imports it.
        .systemLibrary(
            name: "CYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),
        .executableTarget(name: "TemplateEmbedder"),
        .plugin(
            name: "EmbedTemplates",
            capability: .buildTool(),
            dependencies: ["TemplateEmbedder"]
        ),
        .target(
            name: "KnockCore",
            dependencies: ["CYAML"],
            plugins: ["EmbedTemplates"]
        ),
        .target(name: "KnockKernel", dependencies: ["CNftables", "KnockCore", "KnockSecrets"]),
        .target(name: "KnockClient", dependencies: ["KnockCore"]),
        // Secret files, keygen's writer, and the derivations of rotating knocks and SPA tokens.
        .target(name: "KnockSecrets", dependencies: ["KnockCore"]),
        // Spawning and process-group teardown, for hooks (and knockc's other subprocesses).
        .target(name: "KnockProcess"),
        // The watcher: events from reading the sets, hooks, metrics. Never in the packet path.
        .target(
            name: "KnockWatch",
            dependencies: ["KnockCore", "KnockKernel", "KnockProcess", .product(name: "Logging", package: "swift-log")]
        ),
        // The version `knockc --version` prints, which scripts/package sets at build time.
        .target(name: "KnockcVersion"),
        .executableTarget(
            name: "knockc",
            dependencies: [
                "KnockcVersion", "KnockCore", "KnockKernel", "KnockClient", "KnockSecrets", "KnockWatch",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Shared by the test targets: the seeded spec generator.
        .target(name: "KnockTestSupport", dependencies: ["KnockCore", "KnockProcess"], path: "Tests/KnockTestSupport"),
        .testTarget(name: "KnockCoreTests", dependencies: ["KnockCore", "KnockTestSupport"], exclude: ["Golden", "Knockd"]),
        .testTarget(name: "KernelTests", dependencies: ["KnockCore", "KnockKernel", "KnockClient", "KnockWatch", "KnockSecrets", "KnockProcess", "KnockTestSupport"]),
        .testTarget(name: "KnockClientTests", dependencies: ["KnockClient", "KnockCore"]),
        .testTarget(name: "KnockSecretsTests", dependencies: ["KnockSecrets", "KnockCore"]),
        .testTarget(name: "KnockWatchTests", dependencies: ["KnockWatch", "KnockCore", "KnockProcess", .product(name: "Logging", package: "swift-log")]),
    ]
)
