import CSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A dedicated OS thread for a blocking loop, awaited from async code.
public enum ProbeThread {
    final class Work: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    /// Runs `body` on a new thread named `name` (15 characters at most show) and returns
    /// its value; nil if no thread could be created (the body then does not run: it may
    /// change its thread's state, such as its network namespace).
    public static func run<T: Sendable>(name: String, _ body: @escaping @Sendable () -> T) async -> T? {
        await withCheckedContinuation { (continuation: CheckedContinuation<T?, Never>) in
            let work = Work {
                csupport_thread_name(String(name.prefix(15)))
                continuation.resume(returning: body())
            }
            let box = Unmanaged.passRetained(work)
            var tid = pthread_t()
            let r = pthread_create(&tid, nil, { arg in
                Unmanaged<Work>.fromOpaque(arg!).takeRetainedValue().body()
                return nil
            }, box.toOpaque())
            guard r == 0 else {
                box.release()
                continuation.resume(returning: nil)
                return
            }
            pthread_detach(tid)
        }
    }
}
