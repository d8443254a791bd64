// swift-tools-version:6.0
import PackageDescription

// Stages live in KnockCore (spec → model → IR → text); KnockKernel is the only target that
// touches libnftables; KnockClient sends knocks; `knockc` is the thin command line on top.
let package = Package(
    name: "knockc",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "knockc", targets: ["knockc"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CNftables",
            pkgConfig: "libnftables",
            providers: [.apt(["libnftables-dev"])]
        ),
        .executableTarget(name: "TemplateEmbedder"),
        .plugin(
            name: "EmbedTemplates",
            capability: .buildTool(),
            dependencies: ["TemplateEmbedder"]
        ),
        .target(
            name: "KnockCore",
            dependencies: [.product(name: "Yams", package: "Yams")],
            plugins: ["EmbedTemplates"]
        ),
        .target(name: "KnockKernel", dependencies: ["CNftables", "KnockCore"]),
        .target(name: "KnockClient", dependencies: ["KnockCore"]),
        .executableTarget(
            name: "knockc",
            dependencies: [
                "KnockCore", "KnockKernel", "KnockClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Shared by the test targets: the seeded spec generator.
        .target(name: "KnockTestSupport", dependencies: ["KnockCore"], path: "Tests/KnockTestSupport"),
        .testTarget(name: "KnockCoreTests", dependencies: ["KnockCore", "KnockTestSupport"], exclude: ["Golden"]),
        .testTarget(name: "KernelTests", dependencies: ["KnockCore", "KnockKernel", "KnockClient", "KnockTestSupport"]),
        .testTarget(name: "KnockClientTests", dependencies: ["KnockClient", "KnockCore"]),
    ]
)
