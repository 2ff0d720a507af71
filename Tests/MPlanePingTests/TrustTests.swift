import CSupport
import MPlane
import MPlanePing
import MPlaneCapture
import MPlaneProbe
import MPlaneScheduler
import MPlaneTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("The probe's own error and clock state in results")
struct TrustTests {
    let synced = ClockState(synchronised: true, estimatedErrorMicroseconds: 120, maximumErrorMicroseconds: 4_500)

    @Test("a wall-clock step simulated through the clock seam shows up; slewing does not count as a step")
    func clockStep() {
        let s: Int64 = 1_000_000_000
        let real0: Int64 = 1_767_225_600 * s
        var w = ClockWatch(state: synced, real: real0, mono: 5 * s)
        for k in 1...4 { w.sample(real: real0 + Int64(k) * s, mono: (5 + Int64(k)) * s) }
        // The wall clock is stepped back 2 s between two readings.
        for k in 5...9 { w.sample(real: real0 + Int64(k) * s - 2 * s, mono: (5 + Int64(k)) * s) }
        w.finish(state: nil, real: real0 + 8 * s, mono: 15 * s)
        #expect(w.offsetChange == 2 * s && w.stepped)
        let m = Dictionary(uniqueKeysWithValues: w.metadata)
        #expect(m["clock.step.us"] == .natural(2_000_000) && m["clock.stepped"] == .boolean(true))
        #expect(m["clock.synchronised.start"] == .string("yes") && m["clock.synchronised.end"] == .string("unknown"))
        #expect(m["clock.error.maximum.us"] == nil, "left out when the end state is unknown")
        // A slew of 400 µs over 10 s (40 ppm) is no step.
        var slew = ClockWatch(state: synced, real: real0, mono: 0)
        slew.finish(state: synced, real: real0 + 10 * s + 400_000, mono: 10 * s)
        #expect(slew.offsetChange == 400_000 && !slew.stepped)
        let n = Dictionary(uniqueKeysWithValues: slew.metadata)
        #expect(n["clock.error.estimated.us"] == .natural(120) && n["clock.error.maximum.us"] == .natural(4_500))
        #expect(n["clock.stepped"] == .boolean(false))
    }

    @Test("own-error figures: quantiles of a bounded sample, exact count and maximum, late sends counted")
    func ownError() {
        var e = OwnError()
        for i in 0..<10_000 { e.sent(lateness: Int64(i % 100) * 1_000) }  // 0 ... 99 µs
        e.sent(lateness: 5_000_000)  // one probe 5 ms late
        #expect(e.schedule.count == 10_001 && e.schedule.values.count == SelfSample.limit && e.sentLate == 1)
        let m = Dictionary(uniqueKeysWithValues: e.metadata)
        #expect(m["probe.schedule.error.us.max"] == .natural(5_000))
        guard case .natural(let p50)? = m["probe.schedule.error.us.50pct"], case .natural(let p99)? = m["probe.schedule.error.us.99pct"]
        else { Issue.record("no quantiles"); return }
        #expect((40...60).contains(p50) && (95...99).contains(p99), "p50 \(p50), p99 \(p99)")
        #expect(m["probe.read.delay.us.50pct"] == nil, "no reply was read")
        #expect(m["probe.sent.late"] == .natural(1))
    }

    @Test("a probe sent late is marked in its row, the others not")
    func lateProbesAreMarked() {
        var t = PingTracker(targets: [addr("127.0.0.1")], identifier: 1, cookie: 2, timeout: 1_000_000, inFlight: 4)
        var sink = Recorder()
        t.sent(target: 0, mono: 0, real: 0, late: true, sink: &sink)
        t.sent(target: 0, mono: 10, real: 10, sink: &sink)
        t.expire(now: 10_000_000, sink: &sink)
        #expect(sink.probes.map(\.sentLate) == [true, false])
    }

    @Test("the shipped unit admits the clock read (adjtimex) without the right to set the clock")
    func unitAdmitsTheClockRead() throws {
        let unit = String(decoding: try #require(readFile(repoRoot + "/deploy/mpcom.service")), as: UTF8.self)
        let lines = unit.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("#") }
        func values(_ key: String) -> [String] {
            lines.filter { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
        }
        #expect(values("ProtectClock") == ["no"], "ProtectClock=yes refuses even a read of the clock state")
        // glibc's adjtimex() is the clock_adjtime system call.
        let admitted = values("SystemCallFilter").joined(separator: " ").split(separator: " ")
        #expect(admitted.contains("adjtimex") && admitted.contains("clock_adjtime"))
        #expect(values("SystemCallErrorNumber") == ["EPERM"], "a refused call must fail, not kill the probe with SIGSYS")
        #expect(!values("CapabilityBoundingSet").joined().contains("CAP_SYS_TIME"), "the probe must not be able to set the clock")
        guard run(["/bin/sh", "-c", "command -v systemd-analyze"]).status == 0 else { return }
        // @system-service alone lacks both: the unit adds them.
        let group = String(decoding: run(["systemd-analyze", "syscall-filter", "@system-service"]).stdout, as: UTF8.self)
        let names = group.split(whereSeparator: { $0 == "\n" || $0 == " " })
        #expect(!names.contains("adjtimex") && !names.contains("clock_adjtime"))
        // `systemd-analyze verify` on the unit, its ExecStart pointed at a binary that exists.
        let dir = "/tmp/mplane-unit-\(getpid())"
        _ = run(["/bin/mkdir", "-p", dir])
        defer { _ = run(["/bin/rm", "-rf", dir]) }
        let patched = unit.replacing("/usr/local/bin/mpcom", with: "/bin/true")
        #expect(writeFile(dir + "/mpcom.service", Array(patched.utf8)))
        let verify = run(["/bin/sh", "-c", "systemd-analyze verify \(dir)/mpcom.service 2>&1"])
        let said = String(decoding: verify.stdout, as: UTF8.self)
        #expect(verify.status == 0 && !said.contains("mpcom.service:"), "\(said)")
    }
}

@Suite("Clock state and own error in a live result (needs CAP_NET_RAW)", .serialized,
       .enabled(if: rawSocketProblem == nil, "\(rawSocketProblem ?? "")"))
struct LiveTrustTests {
    /// The clock state as a separate small program reads it: adjtimex(2) through Python's ctypes.
    func adjtimexByAnotherProgram() -> (synchronised: Bool, maxerror: Int64)? {
        let script = """
            import ctypes
            class T(ctypes.Structure):
                _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                            ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                            ("pad", ctypes.c_byte * 200)]
            t = T()
            r = ctypes.CDLL(None, use_errno=True).adjtimex(ctypes.byref(t))
            print(int(r != 5 and not (t.status & 0x40)), t.maxerror)
            """
        let out = run(["python3", "-c", script])
        let f = String(decoding: out.stdout, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard out.status == 0, f.count == 2, let s = Int(f[0]), let m = Int64(f[1]) else { return nil }
        return (s == 1, m)
    }

    @Test("ping-stats carries the clock state adjtimex reports, the schedule error and the timestamp sources")
    func liveResult() async throws {
        let services = PingService.services(source: addr("127.0.0.1"), forms: [.statistics],
                                            settings: { var s = PingService.Settings(); s.socket = .raw; return s }())
        let scheduler = Scheduler(services: services)
        let runner = Task { await scheduler.run() }
        defer { scheduler.shutdown(); runner.cancel() }
        let before = try #require(adjtimexByAnotherProgram(), "python3 could not read adjtimex")
        let spec = try PingCapabilityTests().specification(.statistics, ["source.ip4": "127.0.0.1", "destination.ip4": "127.0.0.1"],
                                                           when: "now + 2s / 1s")
        guard case .receipt(let receipt) = await scheduler.submit(spec) else { Issue.record("refused"); return }
        guard case .result(let r) = await scheduler.waitForResult(token: receipt.token, timeout: .seconds(20)) else {
            Issue.record("no result")
            return
        }
        let after = try #require(adjtimexByAnotherProgram())
        let m = r.statement
        let word: Value = .string(after.synchronised ? "yes" : "no")
        #expect(m.metadataValue("clock.synchronised.end") == word)
        #expect(m.metadataValue("clock.synchronised.start") == .string(before.synchronised ? "yes" : "no"))
        // The maximum error grows by 500 µs per second between two readings (or is reset by
        // the time daemon): ours lies between the two programs' readings, or at a reset.
        guard case .natural(let maxerror)? = m.metadataValue("clock.error.maximum.us") else {
            Issue.record("no clock.error.maximum.us")
            return
        }
        if after.maxerror >= before.maxerror {
            #expect(Int64(maxerror) >= before.maxerror && Int64(maxerror) <= after.maxerror,
                    "ours \(maxerror), theirs \(before.maxerror)...\(after.maxerror)")
        } else {
            // The time daemon reset it meanwhile.
            #expect(Int64(maxerror) <= before.maxerror, "ours \(maxerror), theirs \(before.maxerror) then \(after.maxerror)")
        }
        #expect(m.metadataValue("clock.stepped") == .boolean(false))
        #expect(m.metadataValue("probe.schedule.error.us.max") != nil && m.metadataValue("probe.sent.late") != nil)
        #expect(m.metadataValue("probe.read.delay.us.50pct") != nil, "raw sockets give kernel receive timestamps")
        guard case .natural(let k)? = m.metadataValue("icmp.samples.kernel"), case .natural(let rx)? = m.metadataValue("icmp.samples.kernel-rx"),
              case .natural(let u)? = m.metadataValue("icmp.samples.user") else {
            Issue.record("no timestamp source counts")
            return
        }
        // One sample per reply (a loaded machine may lose one to the timeout).
        #expect(r.values.value("delay.twoway.icmp.count", row: 0) == .natural(k + rx + u), "\(k) + \(rx) + \(u)")
    }
}

@Suite("Cross-traffic in a live result (needs CAP_NET_RAW)", .serialized,
       .enabled(if: rawSocketProblem == nil, "\(rawSocketProblem ?? "")"))
struct LiveCrossTrafficTests {
    @Test("ping-stats on 127.0.0.1 carries what else lo carried meanwhile")
    func crossTraffic() async throws {
        var settings = PingService.Settings()
        settings.socket = .raw
        settings.crossTraffic = CaptureService.crossTraffic
        let scheduler = Scheduler(services: PingService.services(source: addr("127.0.0.1"), forms: [.statistics], settings: settings))
        let runner = Task { await scheduler.run() }
        defer { scheduler.shutdown(); runner.cancel() }
        let spec = try PingCapabilityTests().specification(.statistics, ["source.ip4": "127.0.0.1", "destination.ip4": "127.0.0.1"],
                                                           when: "now + 3s / 1s")
        guard case .receipt(let receipt) = await scheduler.submit(spec) else { Issue.record("refused"); return }
        // Ten datagrams of 100 bytes (128 octets at the IP layer) while it measures.
        try await Task.sleep(for: .milliseconds(1_200))
        #expect(sendUDP(port: 0, count: 10, size: 100))
        guard case .result(let r) = await scheduler.waitForResult(token: receipt.token, timeout: .seconds(20)) else {
            Issue.record("no result")
            return
        }
        #expect(r.statement.metadataValue("cross.interface") == .string("lo"))
        guard case .natural(let packets)? = r.statement.metadataValue("cross.packets.ip"),
              case .natural(let octets)? = r.statement.metadataValue("cross.octets.ip") else {
            Issue.record("no cross-traffic figures")
            return
        }
        // Other tests may use lo meanwhile: at least ours.
        #expect(packets >= 10 && octets >= 1_280, "\(packets) packets, \(octets) octets")
    }
}
