#include "core/cache/disk_tier.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "core/cache/cache_key.h"

namespace harrow::cache {

namespace {

constexpr char kMagic[4] = {'H', 'R', 'W', 'C'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderSize = 4 + 4 + 8 + 8;
constexpr std::string_view kSuffix = ".hce";
constexpr std::string_view kTempPrefix = "tmp-";
constexpr char kKeySep = '\x1e';  // as the memory tier joins primary and secondary keys

uint64_t fnv1a(std::string_view bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_str(std::string& out, std::string_view s) {
  put_u64(out, s.size());
  out.append(s);
}

struct Reader {
  std::string_view in;
  bool ok = true;
  uint64_t u64() {
    if (in.size() < 8) {
      ok = false;
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<unsigned char>(in[i])} << (8 * i);
    in.remove_prefix(8);
    return v;
  }
  int64_t i64() { return static_cast<int64_t>(u64()); }
  std::string str() {
    uint64_t n = u64();
    if (!ok || n > in.size()) {
      ok = false;
      return {};
    }
    std::string s(in.substr(0, n));
    in.remove_prefix(n);
    return s;
  }
};

std::string full_key(std::string_view primary, std::string_view secondary) {
  std::string k(primary);
  k.push_back(kKeySep);
  k.append(secondary);
  return k;
}

std::string file_name_for(const std::string& key) {
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t h = fnv1a(key);
  std::string name(16, '0');
  for (int i = 15; i >= 0; --i, h >>= 4) name[i] = kHex[h & 15];
  name.append(kSuffix);
  return name;
}

bool read_whole(const std::string& path, std::string& out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return false;
  }
  out.resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::read(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(done);
  return done == static_cast<size_t>(st.st_size);
}

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

std::string serialize(const StoredResponse& e) {
  std::string payload;
  payload.reserve(e.body.size() + 1024);
  put_str(payload, e.primary_key);
  put_str(payload, e.host);
  put_str(payload, e.url);
  put_str(payload, e.secondary_key);
  put_u64(payload, e.vary.size());
  for (const std::string& v : e.vary) put_str(payload, v);
  put_u64(payload, static_cast<uint64_t>(e.status));
  put_str(payload, e.reason);
  put_u64(payload, e.fields.size());
  for (const auto& [name, value] : e.fields) {
    put_str(payload, name);
    put_str(payload, value);
  }
  for (int64_t v :
       {e.request_time, e.response_time, e.date_value, e.age_value, e.lifetime,
        static_cast<int64_t>(e.must_revalidate), e.stale_while_revalidate, e.stale_if_error}) {
    put_u64(payload, static_cast<uint64_t>(v));
  }
  put_str(payload, e.etag);
  put_str(payload, e.last_modified);
  put_str(payload, e.body);
  std::string file;
  file.reserve(kHeaderSize + payload.size());
  file.append(kMagic, 4);
  put_u32(file, kVersion);
  put_u64(file, payload.size());
  put_u64(file, fnv1a(payload));
  file.append(payload);
  return file;
}

std::shared_ptr<StoredResponse> deserialize(std::string_view file) {
  if (file.size() < kHeaderSize || std::memcmp(file.data(), kMagic, 4) != 0) return nullptr;
  uint32_t version = 0;
  for (int i = 0; i < 4; ++i)
    version |= uint32_t{static_cast<unsigned char>(file[4 + i])} << (8 * i);
  if (version != kVersion) return nullptr;
  Reader header{file.substr(8, 16)};
  uint64_t length = header.u64();
  uint64_t checksum = header.u64();
  std::string_view payload = file.substr(kHeaderSize);
  if (payload.size() != length || fnv1a(payload) != checksum) return nullptr;
  Reader r{payload};
  auto e = std::make_shared<StoredResponse>();
  e->primary_key = r.str();
  e->host = r.str();
  e->url = r.str();
  e->secondary_key = r.str();
  uint64_t vary = r.u64();
  for (uint64_t i = 0; r.ok && i < vary; ++i) e->vary.push_back(r.str());
  uint64_t status = r.u64();
  if (status < 100 || status > 999) return nullptr;
  e->status = static_cast<int>(status);
  e->reason = r.str();
  uint64_t fields = r.u64();
  for (uint64_t i = 0; r.ok && i < fields; ++i) {
    std::string name = r.str();
    std::string value = r.str();
    e->fields.emplace_back(std::move(name), std::move(value));
  }
  e->request_time = r.i64();
  e->response_time = r.i64();
  e->date_value = r.i64();
  e->age_value = r.i64();
  e->lifetime = r.i64();
  uint64_t must_revalidate = r.u64();
  if (must_revalidate > 1) return nullptr;
  e->must_revalidate = must_revalidate == 1;
  e->stale_while_revalidate = r.i64();
  e->stale_if_error = r.i64();
  e->etag = r.str();
  e->last_modified = r.str();
  e->body = r.str();
  if (!r.ok || !r.in.empty()) return nullptr;
  return e;
}

DiskTier::DiskTier(std::string directory, uint64_t max_bytes, uint32_t low_pct, uint32_t high_pct)
    : dir_(std::move(directory)), max_bytes_(max_bytes), low_pct_(low_pct), high_pct_(high_pct) {
  if (low_pct_ > high_pct_) low_pct_ = high_pct_;
}

bool DiskTier::open(std::string& error) {
  if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) {
    error = "cannot create the disk cache directory " + dir_ + ": " + std::strerror(errno);
    return false;
  }
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) {
    error = "cannot read the disk cache directory " + dir_ + ": " + std::strerror(errno);
    return false;
  }
  struct Found {
    std::string name;
    int64_t mtime;
  };
  std::vector<Found> found;
  while (dirent* ent = ::readdir(d)) {
    std::string name = ent->d_name;
    std::string path = dir_ + "/" + name;
    if (name.rfind(kTempPrefix, 0) == 0) {
      ::unlink(path.c_str());  // a write a crash interrupted
      continue;
    }
    if (name.size() <= kSuffix.size() ||
        name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
      continue;
    }
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    found.push_back({name, static_cast<int64_t>(st.st_mtime)});
  }
  ::closedir(d);
  std::sort(found.begin(), found.end(),
            [](const Found& a, const Found& b) { return a.mtime < b.mtime; });
  std::lock_guard lock(mu_);
  for (const Found& f : found) {
    std::string path = dir_ + "/" + f.name;
    std::string bytes;
    std::shared_ptr<StoredResponse> e;
    if (read_whole(path, bytes)) e = deserialize(bytes);
    if (e == nullptr) {
      ::unlink(path.c_str());  // damaged: never served
      continue;
    }
    FileInfo info;
    info.name = f.name;
    info.size = bytes.size();
    info.host = e->host;
    info.url = e->url;
    info.vary = e->vary;
    index_locked(full_key(e->primary_key, e->secondary_key), std::move(info));
  }
  scavenge_locked();
  return true;
}

void DiskTier::index_locked(const std::string& key, FileInfo info) {
  remove_locked(key);
  info.seq = next_seq_++;
  bytes_ += info.size;
  by_seq_.emplace(info.seq, key);
  std::string primary = key.substr(0, key.find(kKeySep));
  vary_[primary] = info.vary;
  files_.emplace(key, std::move(info));
}

void DiskTier::remove_locked(const std::string& key) {
  auto it = files_.find(key);
  if (it == files_.end()) return;
  bytes_ -= it->second.size;
  by_seq_.erase(it->second.seq);
  files_.erase(it);
}

bool DiskTier::may_have(std::string_view primary) {
  std::lock_guard lock(mu_);
  return vary_.count(std::string(primary)) != 0;
}

EntryPtr DiskTier::read(std::string_view primary, std::span<const HeaderField> request_fields) {
  std::string key, name;
  {
    std::lock_guard lock(mu_);
    auto v = vary_.find(std::string(primary));
    if (v == vary_.end()) return nullptr;
    key = full_key(primary, secondary_key(v->second, request_fields));
    auto it = files_.find(key);
    if (it == files_.end()) return nullptr;
    name = it->second.name;
  }
  std::string bytes;
  std::shared_ptr<StoredResponse> e;
  if (read_whole(dir_ + "/" + name, bytes)) e = deserialize(bytes);
  if (e == nullptr || e->primary_key != primary) {
    std::lock_guard lock(mu_);
    auto it = files_.find(key);
    if (it != files_.end() && it->second.name == name) {
      ::unlink((dir_ + "/" + name).c_str());
      remove_locked(key);
    }
    return nullptr;
  }
  return e;
}

bool DiskTier::write(const StoredResponse& entry) {
  std::string key = full_key(entry.primary_key, entry.secondary_key);
  std::string bytes = serialize(entry);
  if (max_bytes_ != 0 && bytes.size() > max_bytes_) return false;
  std::string name = file_name_for(key);
  std::string temp;
  {
    std::lock_guard lock(mu_);
    temp = dir_ + "/" + std::string(kTempPrefix) + std::to_string(::getpid()) + "-" +
           std::to_string(temp_counter_++);
  }
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return false;
  bool ok = write_all(fd, bytes) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(temp.c_str(), (dir_ + "/" + name).c_str()) != 0) {
    ::unlink(temp.c_str());
    return false;
  }
  int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);  // the rename itself survives a power cut
    ::close(dfd);
  }
  std::lock_guard lock(mu_);
  // Another key whose file name hashed the same was just replaced on disk: forget it.
  for (auto it = files_.begin(); it != files_.end(); ++it) {
    if (it->second.name == name && it->first != key) {
      remove_locked(std::string(it->first));
      break;
    }
  }
  FileInfo info;
  info.name = name;
  info.size = bytes.size();
  info.host = entry.host;
  info.url = entry.url;
  info.vary = entry.vary;
  index_locked(key, std::move(info));
  scavenge_locked();
  return true;
}

void DiskTier::scavenge_locked() {
  if (max_bytes_ == 0 || bytes_ * 100 <= max_bytes_ * high_pct_) return;
  while (!by_seq_.empty() && bytes_ * 100 > max_bytes_ * low_pct_) {
    std::string key = by_seq_.begin()->second;
    auto it = files_.find(key);
    if (it != files_.end()) ::unlink((dir_ + "/" + it->second.name).c_str());
    remove_locked(key);
    ++evictions_;
  }
}

size_t DiskTier::purge(std::string_view host, std::string_view url, bool prefix) {
  std::lock_guard lock(mu_);
  std::vector<std::string> doomed;
  for (const auto& [key, info] : files_) {
    if (!host.empty() && info.host != host) continue;
    bool match = prefix ? std::string_view(info.url).starts_with(url) : info.url == url;
    if (match) doomed.push_back(key);
  }
  for (const std::string& key : doomed) {
    ::unlink((dir_ + "/" + files_[key].name).c_str());
    remove_locked(key);
  }
  return doomed.size();
}

uint64_t DiskTier::bytes() {
  std::lock_guard lock(mu_);
  return bytes_;
}

uint64_t DiskTier::entries() {
  std::lock_guard lock(mu_);
  return files_.size();
}

}  // namespace harrow::cache
