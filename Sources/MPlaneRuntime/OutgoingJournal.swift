#if canImport(Glibc)
import Glibc
#endif
public import Logging
import MPlane
import MPlaneIO
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

/// One file per queued message in a directory (`[component] result-queue-dir`): the target
/// URL on the first line, the message's JSON after it. Written to a temporary name, synced,
/// then renamed, so a crash leaves either the whole file or none. A file that does not
/// parse is renamed to `*.bad` and reported, never deleted. When the disk is full the
/// message stays queued in memory and the error is logged: nothing is lost while mpcom
/// runs, only what could not be written would be lost to a restart.
public final class DirectoryJournal: OutgoingJournal {
    public let directory: String
    let logger: Logger
    private let next: Mutex<UInt64>

    public struct Failure: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// Creates the directory if needed (mode 0700) and checks it can be written.
    public init(directory: String, logger: Logger = Logger(label: "mplane.queue")) throws(Failure) {
        self.directory = directory.hasSuffix("/") && directory.count > 1 ? String(directory.dropLast()) : directory
        self.logger = logger
        if mkdir(self.directory, 0o700) != 0 && errno != EEXIST {
            throw Failure(message: "result-queue-dir \(directory): cannot create it: \(String(cString: strerror(errno)))")
        }
        guard access(self.directory, W_OK | X_OK) == 0 else {
            throw Failure(message: "result-queue-dir \(directory): cannot write there: \(String(cString: strerror(errno)))")
        }
        next = Mutex((Self.ids(in: self.directory).max() ?? 0) + 1)
    }

    static let suffix = ".mplane"

    static func ids(in directory: String) -> [UInt64] {
        listDirectory(directory).compactMap { $0.hasSuffix(suffix) ? UInt64($0.dropLast(suffix.count)) : nil }.sorted()
    }

    func path(_ id: UInt64) -> String {
        let digits = String(id)
        return directory + "/" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + Self.suffix
    }

    public func load() -> [(id: UInt64, item: Outgoing)] {
        var out: [(id: UInt64, item: Outgoing)] = []
        for id in Self.ids(in: directory) {
            let file = path(id)
            do {
                let bytes = try readAll(file, limit: 1 << 30)
                guard let newline = bytes.firstIndex(of: 10), let url = HTTPURL(String(decoding: bytes[..<newline], as: UTF8.self)) else {
                    throw Failure(message: "no target URL on the first line")
                }
                let message = try MessageDecoder().decode(Array(bytes[(newline + 1)...]))
                out.append((id, Outgoing(message: message, url: url)))
            } catch {
                let aside = file + ".bad"
                rename(file, aside)
                logger.error("a queued message could not be read; kept aside", metadata: ["file": "\(aside)", "error": "\(error)"])
            }
        }
        if !out.isEmpty { logger.notice("messages from before the restart are queued again", metadata: ["mplane.queued": "\(out.count)"]) }
        return out
    }

    public func append(_ item: Outgoing) -> UInt64? {
        let id = next.withLock { n -> UInt64 in defer { n += 1 }; return n }
        let file = path(id), temporary = directory + "/.tmp-" + String(id)
        var bytes = Array((item.url.description + "\n").utf8)
        bytes += MessageEncoder().encode(item.message)
        do {
            try writeAll(temporary, bytes, mode: 0o600, sync: true)
            guard rename(temporary, file) == 0 else { throw Failure(message: "rename: \(String(cString: strerror(errno)))") }
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
            logger.error("could not remove a delivered message's file", metadata: ["file": "\(path(id))", "error": "\(String(cString: strerror(errno)))"])
        }
    }
}
