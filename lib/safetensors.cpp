#include <xtgrad/lib/safetensors.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/json_read.hpp>
#include <xtgrad/lib/rng.hpp>

namespace xtgrad {

namespace {

constexpr std::uint64_t kMaxHeader = 100ull << 20;  // as the reference implementation: 100 MB

// The header's JSON: a real file nests 3 deep (the header, a tensor, its shape) and holds about 8 values per
// tensor; 2^20 values are 130,000 tensors, more than any checkpoint has, and bound the parse's memory to ~100 MB.
constexpr JsonLimits kHeaderLimits{3, 1u << 20};

static_assert(sizeof(float) == 4, "F32 tensors");

bool little_endian() {
    const std::uint16_t one = 1;
    unsigned char b;
    std::memcpy(&b, &one, 1);
    return b == 1;
}

std::string sys_error() { return std::strerror(errno); }

}  // namespace

std::string encode_safetensors(const StateDict& sd) {
    if (!little_endian()) throw FileError("safetensors: only little-endian machines are supported");
    std::string header = "{";
    if (!sd.metadata.empty()) {
        header += "\"__metadata__\":{";
        bool first = true;
        for (const auto& [k, v] : sd.metadata) {
            header += (first ? "" : ",") + json_quote(k, fmt::format("safetensors: metadata key '{}'", k)) + ":" +
                      json_quote(v, fmt::format("safetensors: metadata '{}'", k));
            first = false;
        }
        header += "}";
    }
    std::uint64_t offset = 0;
    for (const auto& [name, e] : sd.tensors) {
        std::size_t count = 1;
        for (std::size_t d : e.shape) count *= d;
        if (count != e.value.size())
            throw FileError(fmt::format("safetensors: tensor '{}' declares shape {} but holds {} values", name,
                                        shape_str(e.shape), e.value.size()));
        if (name == "__metadata__") throw FileError("safetensors: a tensor cannot be called __metadata__");
        std::string dims;
        for (std::size_t k = 0; k < e.shape.size(); ++k) dims += fmt::format("{}{}", k ? "," : "", e.shape[k]);
        const std::uint64_t end = offset + 4 * count;
        header += fmt::format("{}{}:{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
                              header.size() > 1 ? "," : "",
                              json_quote(name, fmt::format("safetensors: tensor name '{}'", name)), dims, offset, end);
        offset = end;
    }
    header += "}";
    while (header.size() % 8) header += ' ';  // the spec pads the header with spaces to 8-byte alignment

    std::string out;
    out.reserve(8 + header.size() + offset);
    const std::uint64_t n = header.size();
    for (int b = 0; b < 8; ++b) out += static_cast<char>((n >> (8 * b)) & 0xFF);
    out += header;
    for (const auto& kv : sd.tensors)
        out.append(reinterpret_cast<const char*>(kv.second.value.data()), 4 * kv.second.value.size());
    return out;
}

StateDict decode_safetensors(const std::string& bytes, const std::string& name) {
    if (!little_endian()) throw FileError("safetensors: only little-endian machines are supported");
    if (bytes.size() < 8)
        throw FileError(fmt::format("{}: not a safetensors file: {} bytes, shorter than the 8-byte header length", name,
                                    bytes.size()));
    std::uint64_t n = 0;
    for (int b = 0; b < 8; ++b) n |= static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[b])) << (8 * b);
    if (n > kMaxHeader)
        throw FileError(fmt::format("{}: declared header length {} bytes exceeds the 100 MB limit (corrupt file?)", name, n));
    if (n > bytes.size() - 8)
        throw FileError(fmt::format("{}: declared header length {} bytes runs past the end of the {}-byte file (truncated?)",
                                    name, n, bytes.size()));
    if (n < 2) throw FileError(fmt::format("{}: header length {} is too short for a JSON object", name, n));
    const nlohmann::json root = parse_json(bytes.substr(8, n), kHeaderLimits, name + ": header");
    if (!root.is_object()) throw FileError(fmt::format("{}: the header is not a JSON object", name));
    const std::uint64_t buffer = bytes.size() - 8 - n;
    const char* data = bytes.data() + 8 + n;

    StateDict sd;
    struct Span {
        std::uint64_t begin, end;
        const std::string* name;
    };
    std::vector<Span> spans;
    for (const auto& [key, v] : root.items()) {
        if (key == "__metadata__") {
            if (!v.is_object()) throw FileError(fmt::format("{}: __metadata__ is not an object", name));
            for (const auto& [mk, mv] : v.items()) {
                if (!mv.is_string()) throw FileError(fmt::format("{}: metadata '{}' is not a string", name, mk));
                sd.metadata[mk] = mv.get<std::string>();
            }
            continue;
        }
        const std::string where = fmt::format("{}: tensor '{}'", name, key);
        if (!v.is_object()) throw FileError(where + ": entry is not an object");
        for (const auto& field : v.items())
            if (field.key() != "dtype" && field.key() != "shape" && field.key() != "data_offsets")
                throw FileError(fmt::format("{}: unexpected field '{}' (a tensor has dtype, shape and data_offsets)", where,
                                            field.key()));
        const auto dtype = v.find("dtype"), shape = v.find("shape"), offs = v.find("data_offsets");
        if (dtype == v.end() || !dtype->is_string()) throw FileError(where + ": missing dtype");
        if (*dtype != "F32")
            throw FileError(fmt::format("{}: dtype {} is not supported; xtgrad reads F32 (save with tensor.float())", where,
                                        dtype->get<std::string>()));
        if (shape == v.end() || !shape->is_array()) throw FileError(where + ": missing shape");
        std::vector<std::size_t> dims;
        std::uint64_t nonzero = 1;  // the product of the non-zero sizes: at most 2^40, so no product below overflows
        for (const nlohmann::json& d : *shape) {
            if (!d.is_number_unsigned()) throw FileError(where + ": shape entries must be non-negative integers");
            const std::uint64_t u = d.get<std::uint64_t>();
            if (u != 0 && nonzero > (1ull << 40) / u) throw FileError(where + ": shape is absurdly large");
            nonzero *= u == 0 ? 1 : u;
            dims.push_back(static_cast<std::size_t>(u));
        }
        // stored as (rows x last size), rows the product of the others: [3, 0] is a (3 x 0) Array
        std::uint64_t rows = 1;
        for (std::size_t k = 0; k + 1 < dims.size(); ++k) rows *= dims[k];
        const std::uint64_t cols = dims.empty() ? 1 : dims.back(), count = rows * cols;
        if (offs == v.end() || !offs->is_array() || offs->size() != 2)
            throw FileError(where + ": data_offsets must be [begin, end]");
        for (const nlohmann::json& o : *offs)
            if (!o.is_number_unsigned()) throw FileError(where + ": data_offsets must be non-negative integers");
        const std::uint64_t b = (*offs)[0].get<std::uint64_t>(), e = (*offs)[1].get<std::uint64_t>();
        if (b > e || e > buffer)
            throw FileError(fmt::format("{}: data_offsets [{}, {}] fall outside the {}-byte data buffer (truncated?)", where,
                                        b, e, buffer));
        if (e - b != 4 * count)
            throw FileError(fmt::format("{}: data_offsets [{}, {}] hold {} bytes but shape {} of F32 needs {}", where, b, e,
                                        e - b, shape_str(dims), 4 * count));
        spans.push_back({b, e, &key});
        StateDict::Entry entry;
        entry.shape = dims;
        entry.value = Array({static_cast<std::size_t>(rows), static_cast<std::size_t>(cols)});
        if (count) std::memcpy(entry.value.data(), data + b, 4 * count);
        sd.tensors.emplace(key, std::move(entry));
    }
    // By (begin, end): an empty tensor shares its begin with the tensor after it, and must come first.
    std::sort(spans.begin(), spans.end(),
              [](const Span& x, const Span& y) { return x.begin != y.begin ? x.begin < y.begin : x.end < y.end; });
    std::uint64_t at = 0;
    for (const Span& s : spans) {
        if (s.begin < at) throw FileError(fmt::format("{}: tensor '{}' overlaps the tensor before it", name, *s.name));
        if (s.begin > at) throw FileError(fmt::format("{}: a hole of {} bytes before tensor '{}'", name, s.begin - at, *s.name));
        at = s.end;
    }
    if (at != buffer)
        throw FileError(fmt::format("{}: the data buffer has {} bytes but the tensors cover {}", name, buffer, at));
    return sd;
}

std::string read_file(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw FileError(fmt::format("{}: cannot open: {}", path, sys_error()));
    if (!S_ISREG(st.st_mode)) throw FileError(fmt::format("{}: not a regular file", path));
    std::ifstream in(path, std::ios::binary);
    if (!in) throw FileError(fmt::format("{}: cannot open: {}", path, sys_error()));
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) throw FileError(fmt::format("{}: read error", path));
    return ss.str();
}

namespace {

// The folder and the name of path ("a/b" -> "a", "b"; "b" -> ".", "b"; "/b" -> "/", "b").
std::pair<std::string, std::string> split_path(const std::string& path) {
    const std::size_t slash = path.find_last_of('/');
    if (slash == std::string::npos) return {".", path};
    return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

// A folder opened for *at() calls; closed on scope exit.
struct Folder {
    int fd = -1;
    explicit Folder(const std::string& dir, const std::string& path) {
        fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) throw FileError(fmt::format("{}: cannot open its folder {}: {}", path, dir, sys_error()));
    }
    ~Folder() { ::close(fd); }
    Folder(const Folder&) = delete;
    Folder& operator=(const Folder&) = delete;
};

// 64 unpredictable bits (the kernel's generator; the clock and addresses if it is unavailable).
std::uint64_t random_bits() {
    std::uint64_t v = 0;
    if (::getrandom(&v, sizeof v, 0) == static_cast<ssize_t>(sizeof v)) return v;
    Rng r(static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
          reinterpret_cast<std::uintptr_t>(&v) ^ (static_cast<std::uint64_t>(::getpid()) << 40));
    return r.next_u64();
}

// "<name>.tmp-<pid>-<16 hex digits>": the pid says whose it is (for clean-up), the rest cannot be guessed.
const char* const kTmpTag = ".tmp-";
std::string temporary_name(const std::string& name) {
    return fmt::format("{}{}{}-{:016x}", name, kTmpTag, static_cast<long>(::getpid()), random_bits());
}

// The pid in a temporary's name: "<name>.tmp-<pid>-<16 hex>" (ours), "<name>.tmp.<pid>" (earlier versions); 0 if neither.
long temporary_owner(const std::string& entry, const std::string& name) {
    if (entry.size() <= name.size() + 5 || entry.compare(0, name.size(), name) != 0) return 0;
    const std::string tag = entry.substr(name.size(), 5), rest = entry.substr(name.size() + 5);
    const std::size_t digits = std::min(rest.find_first_not_of("0123456789"), rest.size());
    if (digits == 0 || digits > 10) return 0;
    const bool ours = tag == kTmpTag && rest.size() == digits + 17 && rest[digits] == '-' &&
                      rest.find_first_not_of("0123456789abcdef", digits + 1) == std::string::npos;
    const bool old = tag == ".tmp." && digits == rest.size();
    return ours || old ? std::strtol(rest.substr(0, digits).c_str(), nullptr, 10) : 0;
}

// Removes the temporaries of name that processes which no longer run left behind (killed mid-write). A process
// that runs may be writing its own: kept.
void remove_stale_temporaries(int dfd, const std::string& name) {
    const int scan = ::openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (scan < 0) return;
    DIR* d = ::fdopendir(scan);
    if (!d) {
        ::close(scan);
        return;
    }
    std::vector<std::string> stale;
    while (const dirent* e = ::readdir(d)) {
        const long pid = temporary_owner(e->d_name, name);
        if (pid > 0 && pid != ::getpid() && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) stale.push_back(e->d_name);
    }
    ::closedir(d);
    for (const std::string& e : stale) ::unlinkat(dfd, e.c_str(), 0);  // a name, never followed
}

// Whether O_TMPFILE may be tried (XTGRAD_NO_TMPFILE=1 makes every write take the named path, for tests).
bool tmpfile_allowed() {
    const char* e = std::getenv("XTGRAD_NO_TMPFILE");
    return !(e && *e == '1');
}

// Creates a new file under a fresh name in the folder, exclusively (O_EXCL | O_NOFOLLOW: a planted file or
// symlink is never opened); returns its descriptor and sets name, or -1 with errno set (and name empty).
int create_exclusive(int dfd, const std::string& base, std::string& name) {
    for (int attempt = 0; attempt < 100; ++attempt) {
        name = temporary_name(base);
        const int fd = ::openat(dfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0) return fd;
        if (errno != EEXIST) break;
    }
    name.clear();
    return -1;
}

// A new temporary file for base in the folder: unnamed (O_TMPFILE) where the file system has them, else named
// by create_exclusive (name set); -1 with errno set.
int create_temporary(int dfd, const std::string& base, std::string& name) {
    name.clear();
    if (tmpfile_allowed()) {
        const int fd = ::openat(dfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
        if (fd >= 0) return fd;
    }
    return create_exclusive(dfd, base, name);
}

// Writes all of bytes to fd and fsyncs them; false with errno set and `what` saying which step failed.
bool write_synced(int fd, const std::string& bytes, std::string& what) {
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (w == 0) errno = EIO;
            what = fmt::format("write failed after {} of {} bytes", done, bytes.size());
            return false;
        }
        done += static_cast<std::size_t>(w);
    }
    what = "fsync failed";
    return ::fsync(fd) == 0;
}

// Gives an unnamed (O_TMPFILE) file a fresh temporary name: linkat through /proc (no privilege needed), else
// AT_EMPTY_PATH (needs CAP_DAC_READ_SEARCH). False, name empty, when neither can.
bool name_unnamed(int dfd, int fd, const std::string& base, std::string& name) {
    const std::string self = fmt::format("/proc/self/fd/{}", fd);
    for (int attempt = 0; attempt < 100; ++attempt) {
        name = temporary_name(base);
        if (::linkat(AT_FDCWD, self.c_str(), dfd, name.c_str(), AT_SYMLINK_FOLLOW) == 0) return true;
        if (errno != EEXIST && ::linkat(fd, "", dfd, name.c_str(), AT_EMPTY_PATH) == 0) return true;
        if (errno != EEXIST) break;
    }
    name.clear();
    return false;
}

}  // namespace

void write_file_atomic(const std::string& path, const std::string& bytes) {
    const auto [dir, base] = split_path(path);
    if (base.empty() || base == "." || base == "..") throw FileError(fmt::format("{}: names a folder, not a file", path));
    const Folder folder(dir, path);
    remove_stale_temporaries(folder.fd, base);

    // An unnamed file (O_TMPFILE) where the file system has them, named only once its bytes are on disk; else
    // (or when it cannot be named) a named one, created exclusively.
    for (bool named = !tmpfile_allowed();; named = true) {
        std::string tmp;
        int fd = named ? create_exclusive(folder.fd, base, tmp) : create_temporary(folder.fd, base, tmp);
        if (fd < 0) throw FileError(fmt::format("{}: cannot create a temporary file in {}: {}", path, dir, sys_error()));
        auto fail = [&](const std::string& what) {
            const std::string why = sys_error();
            if (fd >= 0) ::close(fd);  // also when fsync failed
            if (!tmp.empty()) ::unlinkat(folder.fd, tmp.c_str(), 0);
            throw FileError(fmt::format("{}: {}: {} (the previous file is intact)", path, what, why));
        };
        std::string what;
        if (!write_synced(fd, bytes, what)) fail(what);
        if (tmp.empty() && !name_unnamed(folder.fd, fd, base, tmp)) {  // no /proc, no privilege: write it named
            ::close(fd);
            continue;
        }
        const int closed = ::close(fd);
        fd = -1;
        if (closed != 0) fail("closing the temporary file failed");
        if (::renameat(folder.fd, tmp.c_str(), folder.fd, base.c_str()) != 0) fail("rename over it failed");
        ::fsync(folder.fd);  // make the rename itself durable
        return;
    }
}

void check_can_write(const std::string& path) {
    const auto [dir, base] = split_path(path);
    if (base.empty() || base == "." || base == "..") throw FileError(fmt::format("{}: names a folder, not a file", path));
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    std::string tmp;
    const int fd = dfd < 0 ? -1 : create_temporary(dfd, base, tmp);
    if (fd < 0) {
        const std::string why = sys_error();
        if (dfd >= 0) ::close(dfd);
        throw FileError(fmt::format("cannot write into {}: {}", dir, why));
    }
    ::close(fd);
    if (!tmp.empty()) ::unlinkat(dfd, tmp.c_str(), 0);
    ::close(dfd);
}

void save_safetensors(const std::string& path, const StateDict& sd) { write_file_atomic(path, encode_safetensors(sd)); }

StateDict load_safetensors(const std::string& path) { return decode_safetensors(read_file(path), path); }

}  // namespace xtgrad
