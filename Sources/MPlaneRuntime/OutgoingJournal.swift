#if canImport(Glibc)
import Glibc
#endif
public import Logging
import MPlaneHTTP
import MPlaneIO
import MPlane
import Synchronization

/// Where a queue of outgoing messages keeps them across restarts.
public protocol OutgoingJournal: Sendable {
    /// The items kept from before, oldest first, with their journal ids.
    func load() -> [(id: UInt64, item: Outgoing)]
    /// Keeps `item`; its id, or nil when it could not be kept (it then lives in memory only).
    func append(_ item: Outgoing) -> UInt64?
    /// Forgets the item `id` (delivered, or dropped from a full queue).
    func remove(_ id: UInt64)
}

/// One file per queued message in a directory (`[component] result-queue-dir`): the format's
/// version on the first line (`mplane-queue 1`), the target URL on the second, the message's
/// JSON after it (files of the first release, without the version line, are read as well; a
/// file of a later version is left in place for the mpcom that wrote it). Written to a temporary name, synced,
/// renamed, and the directory synced, so a crash or a power cut leaves the whole file or
/// none. A file that does not parse is renamed `*.bad` and reported, never deleted. On a full
/// disk the message stays queued in memory and the error is logged. Delivery is at least
/// once: a crash between a delivery and the removal of its file sends it again.
public final class DirectoryJournal: OutgoingJournal {
    public let directory: String
    let logger: Logger
    private let next: Mutex<UInt64>
    /// The directory, open: synced after each new file.
    private let descriptor: Int32

    public struct Failure: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// Creates the directory if needed (mode 0700) and checks that it is a directory this
    /// process can list and write; removes what a crash left half-written.
    public init(directory: String, logger: Logger = Logger(label: "mplane.queue")) throws(Failure) {
        self.directory = directory.hasSuffix("/") && directory.count > 1 ? String(directory.dropLast()) : directory
        self.logger = logger
        func failure(_ what: String) -> Failure {
            Failure(message: "result-queue-dir \(directory): \(what): \(errnoText(errno))")
        }
        if mkdir(self.directory, 0o700) != 0 && errno != EEXIST { throw failure("cannot create it") }
        descriptor = open(self.directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw failure("cannot open it as a directory") }
        guard access(self.directory, R_OK | W_OK | X_OK) == 0 else {
            close(descriptor)
            throw failure("cannot read and write there")
        }
        let names = listDirectory(self.directory)
        for name in names where name.hasPrefix(".tmp-") { unlink(self.directory + "/" + name) }
        // Past every id in use, including the ones set aside as .bad.
        let used = names.compactMap { Self.id(of: $0.hasSuffix(".bad") ? String($0.dropLast(4)) : $0) }
        for name in names where name.hasSuffix(Self.suffix) && Self.id(of: name) == nil {
            logger.warning("a file in the queue directory was not written by mpcom; ignored",
                           metadata: ["file": "\(self.directory)/\(name)"])
        }
        next = Mutex((used.max() ?? 0) + 1)
    }

    deinit { close(descriptor) }

    static let suffix = ".mplane"
    /// The file format's version, on each file's first line.
    static let version = 1
    static let versionPrefix = Array("mplane-queue ".utf8)

    /// The largest id this journal writes or reads: ids count up from 1, so a larger one was
    /// not written here, and counting on from it could overflow.
    static let maximumID: UInt64 = 999_999_999_999_999_999

    /// The id of a queued message's file name (`<digits>.mplane`), nil for any other name
    /// and for an id above ``maximumID``.
    static func id(of name: String) -> UInt64? {
        guard name.hasSuffix(suffix), let id = UInt64(name.dropLast(suffix.count)), id <= maximumID else { return nil }
        return id
    }

    static func ids(in directory: String) -> [UInt64] { listDirectory(directory).compactMap(id(of:)).sorted() }

    func path(_ id: UInt64) -> String {
        let digits = String(id)
        return directory + "/" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + Self.suffix
    }

    public func load() -> [(id: UInt64, item: Outgoing)] {
        var out: [(id: UInt64, item: Outgoing)] = []
        for id in Self.ids(in: directory) {
            let file = path(id)
            let bytes: [UInt8]
            do { bytes = try readAll(file, limit: 1 << 30) } catch {
                // Not the file's fault: leave it for the next start.
                logger.error("a queued message could not be read; left in place", metadata: ["file": "\(file)", "error": "\(error)"])
                continue
            }
            do {
                var rest = bytes[...]
                if rest.starts(with: Self.versionPrefix) {
                    guard let newline = rest.firstIndex(of: 10) else { throw Failure(message: "no line after the version") }
                    let version = String(decoding: rest[rest.startIndex..<newline].dropFirst(Self.versionPrefix.count), as: UTF8.self)
                    guard version == String(Self.version) else {
                        logger.error("a queued message was written by a later version of mpcom; left in place",
                                     metadata: ["file": "\(file)", "mplane.queue_version": "\(version.prefix(20))"])
                        continue
                    }
                    rest = rest[(newline + 1)...]
                }
                guard let newline = rest.firstIndex(of: 10), let url = HTTPURL(String(decoding: rest[rest.startIndex..<newline], as: UTF8.self)) else {
                    throw Failure(message: "no target URL on its line")
                }
                let message = try MessageDecoder().decode(Array(rest[(newline + 1)...]))
                out.append((id, Outgoing(message: message, url: url)))
            } catch {
                let aside = file + ".bad"
                if rename(file, aside) == 0 {
                    logger.error("a queued message does not parse; set aside", metadata: ["file": "\(aside)", "error": "\(error)"])
                } else {
                    logger.error("a queued message does not parse, and could not be set aside; skipped",
                                 metadata: ["file": "\(file)", "error": "\(error)"])
                }
            }
        }
        if !out.isEmpty { logger.notice("messages from before the restart are queued again", metadata: ["mplane.queued": "\(out.count)"]) }
        return out
    }

    public func append(_ item: Outgoing) -> UInt64? {
        // Past maximumID (a billion messages a second for 30 years) ids start again at 1.
        let id = next.withLock { n -> UInt64 in defer { n = n >= Self.maximumID ? 1 : n + 1 }; return n }
        let file = path(id), temporary = directory + "/.tmp-" + String(id)
        var bytes = Self.versionPrefix + Array("\(Self.version)\n\(item.url)\n".utf8)
        bytes += MessageEncoder().encode(item.message)
        do {
            try writeAll(temporary, bytes, mode: 0o600, sync: true)
            guard rename(temporary, file) == 0 else { throw Failure(message: "rename: \(errnoText(errno))") }
            guard fsync(descriptor) == 0 else { throw Failure(message: "fsync of the directory: \(errnoText(errno))") }
            return id
        } catch {
            unlink(temporary)  // what a full disk left of it
            logger.error("could not keep a queued message on disk (disk full?); it stays queued in memory only",
                         metadata: ["dir": "\(directory)", "error": "\(error)"])
            return nil
        }
    }

    public func remove(_ id: UInt64) {
        if unlink(path(id)) != 0 && errno != ENOENT {
            logger.error("could not remove a delivered message's file", metadata: ["file": "\(path(id))", "error": "\(errnoText(errno))"])
        }
    }
}
