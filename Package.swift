// swift-tools-version:6.1
import PackageDescription

// MARK: - Dependencies

let swiftCrypto: Package.Dependency = .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2")
let argumentParser: Package.Dependency = .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2")
let swiftNIO: Package.Dependency = .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3")
let serviceLifecycle: Package.Dependency = .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0")
let swiftLog: Package.Dependency = .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2")
// The supervisor's embedded store: SQLite (Debian's libsqlite3) through GRDB. Only mpsup links it.
let grdb: Package.Dependency = .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0")
// The supervisor's shared store: PostgreSQL. Only mpsup links it.
// TLS (BoringSSL) for every program; DER parsing for certificate identities and CRLs.
let nioSSL: Package.Dependency = .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6")
let asn1: Package.Dependency = .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4")
let postgresNIO: Package.Dependency = .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2")

let crypto: Target.Dependency = .product(name: "Crypto", package: "swift-crypto")
let argumentParserProduct: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")
let nioCore: Target.Dependency = .product(name: "NIOCore", package: "swift-nio")
let nioPosix: Target.Dependency = .product(name: "NIOPosix", package: "swift-nio")
let nioHTTP1: Target.Dependency = .product(name: "NIOHTTP1", package: "swift-nio")
let lifecycle: Target.Dependency = .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")
let unixSignals: Target.Dependency = .product(name: "UnixSignals", package: "swift-service-lifecycle")
let nioSSLProduct: Target.Dependency = .product(name: "NIOSSL", package: "swift-nio-ssl")
let nioTLS: Target.Dependency = .product(name: "NIOTLS", package: "swift-nio")
let asn1Product: Target.Dependency = .product(name: "SwiftASN1", package: "swift-asn1")
let cryptoExtras: Target.Dependency = .product(name: "_CryptoExtras", package: "swift-crypto")
let grdbProduct: Target.Dependency = .product(name: "GRDB", package: "GRDB.swift")
let postgresProduct: Target.Dependency = .product(name: "PostgresNIO", package: "postgres-nio")

// MARK: - Targets

var targets: [Target] = [
    // The mPlane information model and its JSON wire format: no I/O, no C of our own,
    // no full Foundation.
    .target(
        name: "MPlane",
        dependencies: [crypto]
    ),
    // The scheduler: services bound to capabilities, jobs, repetitions, limits, retention.
    .target(
        name: "MPlaneScheduler",
        dependencies: ["MPlane", "MPlaneIO", logging]
    ),
    // HTTP for both sides (SwiftNIO): the server with its limits, a client, URLs, request and
    // reply values. Knows nothing of services or the scheduler; TLS plugs in here.
    .target(
        name: "MPlaneHTTP",
        dependencies: ["MPlane", "MPlaneIO", nioCore, nioPosix, nioHTTP1, nioSSLProduct, nioTLS, asn1Product, crypto, cryptoExtras, logging]
    ),
    // The client side: talking to components (and, later, supervisors) over HTTP.
    .target(
        name: "MPlaneClient",
        dependencies: ["MPlane", "MPlaneHTTP"]
    ),
    // The component: router, component-initiated agent, outgoing queue and journal,
    // configuration. Depends on no measurement service: the program assembles those.
    .target(
        name: "MPlaneRuntime",
        dependencies: ["MPlane", "MPlaneScheduler", "MPlaneProbe", "MPlaneHTTP", "MPlaneIO", logging]
    ),
    // The service kit: what the measurement services share (their threads, reading their
    // settings).
    .target(
        name: "MPlaneProbe",
        dependencies: ["MPlane", "MPlaneScheduler", "MPlaneIO", "CSupport", logging]
    ),
    // Active measurement: ICMP echo over datagram or raw sockets with kernel timestamps.
    .target(
        name: "MPlanePing",
        dependencies: ["MPlane", "MPlaneScheduler", "MPlaneProbe", "MPlaneIO", "CSupport", logging]
    ),
    // Passive measurement: packet and octet counts per period with libpcap.
    .target(
        name: "MPlaneCapture",
        dependencies: ["MPlane", "MPlaneScheduler", "MPlaneProbe", "MPlaneIO", "CSupport", logging]
    ),
    // `mpcom`: the component an operator runs on a probe.
    .executableTarget(
        name: "mpcom",
        dependencies: ["CSupport", "MPlane", "MPlaneScheduler", "MPlaneRuntime", "MPlaneHTTP", "MPlanePing", "MPlaneCapture", "MPlaneIO",
                       argumentParserProduct, lifecycle, unixSignals, logging]
    ),
    // The C shim: ICMP sockets, cmsg, threads, namespaces, and libpcap, which it loads on
    // first use (headers from Debian's libpcap-dev; libpcap0.8 at run time).
    .target(
        name: "CSupport",
        path: "CSupport",
        linkerSettings: [.linkedLibrary("dl")]  // dlopen: part of libc since glibc 2.34, -ldl before
    ),
    // Small helpers for the tools and libraries (the model does no I/O): blocking file
    // access, text trimming, a rate-limited log.
    .target(
        name: "MPlaneIO",
        dependencies: [logging]
    ),
    // `mpcli`: validate, inspect and pretty-print mPlane messages; a client of components.
    // It depends on the client side only: no component, no measurement service, no C.
    .executableTarget(
        name: "mpcli",
        dependencies: ["MPlane", "MPlaneIO", "MPlaneClient", "MPlaneHTTP", "CEditLine", argumentParserProduct]
    ),
    // Debian's libedit (libedit-dev), mpcli's line editor.
    .systemLibrary(
        name: "CEditLine",
        path: "Sources/CEditLine",
        pkgConfig: "libedit",
        providers: [.apt(["libedit-dev"])]
    ),
    // The supervisor: the side probes push to and the side clients use, over a durable
    // store. Knows nothing of measurement services, the scheduler's jobs or C.
    .target(
        name: "MPlaneSupervisor",
        dependencies: ["MPlane", "MPlaneIO", "MPlaneHTTP", "MPlaneClient", "MPlaneScheduler", grdbProduct, postgresProduct, nioSSLProduct, logging]
    ),
    // `mpsup`: the supervisor an operator runs.
    .executableTarget(
        name: "mpsup",
        dependencies: ["MPlane", "MPlaneIO", "MPlaneHTTP", "MPlaneSupervisor", argumentParserProduct, lifecycle, unixSignals, logging]
    ),
    // Benchmarks (not timed tests): `swift run -c release mplane-bench`.
    .executableTarget(
        name: "mplane-bench",
        dependencies: ["MPlane", "MPlaneIO", "MPlaneScheduler", "MPlanePing", "MPlaneCapture"],
        path: "Sources/MPlaneBench"
    ),
    // libFuzzer entry point for the JSON codec (see README, "Fuzzing").
    .executableTarget(
        name: "mplane-fuzz",
        dependencies: ["MPlane", "MPlaneIO"],
        path: "Sources/MPlaneFuzz"
    ),
    // libFuzzer entry point for the HTTP request path through the router (`make fuzz-http`).
    .executableTarget(
        name: "mplane-fuzz-http",
        dependencies: ["MPlane", "MPlaneIO", "MPlaneHTTP", "MPlaneRuntime", "MPlaneScheduler"],
        path: "Sources/MPlaneFuzzHTTP"
    ),
]

// MARK: - Tests

targets += [
    // Helpers shared by the test targets.
    .target(
        name: "MPlaneTestSupport",
        dependencies: ["MPlane", "MPlaneIO"],
        path: "Tests/MPlaneTestSupport"
    ),
    .testTarget(
        name: "MPlaneTests",
        dependencies: ["MPlane", "MPlaneIO", "MPlaneTestSupport", "mpcli"]
    ),
    .testTarget(
        name: "MPlaneSchedulerTests",
        dependencies: ["MPlane", "MPlaneScheduler", "MPlaneIO"]
    ),
    .testTarget(
        name: "MPlanePingTests",
        dependencies: ["CSupport", "MPlane", "MPlaneScheduler", "MPlanePing", "MPlaneProbe", "MPlaneCapture", "MPlaneTestSupport"]
    ),
    .testTarget(
        name: "MPlaneCaptureTests",
        dependencies: ["MPlane", "MPlaneScheduler", "MPlaneCapture", "MPlaneProbe", "CSupport", "MPlaneTestSupport"]
    ),
    .testTarget(
        name: "MPlaneRuntimeTests",
        dependencies: ["MPlane", "MPlaneScheduler", "MPlaneRuntime", "MPlaneHTTP", "MPlaneClient", "MPlanePing", "MPlaneCapture",
                       "MPlaneIO", "MPlaneTestSupport", "mpcom", logging, asn1Product]
    ),
    .testTarget(
        name: "MPlaneSupervisorTests",
        dependencies: ["MPlane", "MPlaneIO", "MPlaneHTTP", "MPlaneScheduler", "MPlaneSupervisor", "MPlaneClient",
                       "MPlaneTestSupport", "mpsup", "mpcom"]
    ),
]

// MARK: - Settings shared by every target

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

for target in targets where target.type != .system {
    if target.name == "CSupport" { continue }
    target.swiftSettings = (target.swiftSettings ?? []) + swiftSettings
}

let package = Package(
    name: "mplane-swift",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "MPlane", targets: ["MPlane"]),
        .library(name: "MPlaneScheduler", targets: ["MPlaneScheduler"]),
        .executable(name: "mpcli", targets: ["mpcli"]),
        .executable(name: "mpcom", targets: ["mpcom"]),
        .executable(name: "mpsup", targets: ["mpsup"]),
        .executable(name: "mplane-bench", targets: ["mplane-bench"]),
    ],
    dependencies: [swiftCrypto, argumentParser, swiftLog, swiftNIO, nioSSL, asn1, serviceLifecycle, grdb, postgresNIO],
    targets: targets
)
