// libFuzzer entry point for the JSON codec. `make fuzz` builds it with
// -sanitize=fuzzer -DFUZZING; a normal build is a replay tool that decodes each file named
// on the command line through the same path.
import MPlane
import MPlaneIO

let decoder = MessageDecoder()
let encoder = MessageEncoder()

/// Decodes `bytes`; whatever decodes must re-encode and decode to the same message.
func exercise(_ bytes: UnsafeRawBufferPointer) {
    guard let message = try? decoder.decode(utf8: bytes) else { return }
    let again = encoder.encode(message)
    guard let second = try? decoder.decode(again) else {
        fatalError("re-encoded message does not decode: \(String(decoding: again, as: UTF8.self))")
    }
    let third = encoder.encode(second)
    precondition(third == again, "encoding is not stable")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    exercise(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if canImport(Glibc)
import Glibc
#endif

#if !FUZZING
/// Replay mode: decodes every file given on the command line through the same path.
@main
struct Replay {
    static func main() {
        for path in CommandLine.arguments.dropFirst() {
            let bytes: [UInt8]
            do { bytes = try readAll(path) } catch { print("\(error)"); exit(2) }
            bytes.withUnsafeBytes { exercise($0) }
            print("\(path): ok")
        }
    }
}
#endif

#if FUZZING
/// libFuzzer's driver (exported by its runtime since LLVM 11).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// SwiftPM links an executable's entry point under this name: hand over to libFuzzer.
@_cdecl("mplane_fuzz_main")
func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc
    var vector = argv
    return LLVMFuzzerRunDriver(&count, &vector) { data, size in
        guard let data else { return 0 }
        return fuzzOne(data, size)
    }
}
#endif
