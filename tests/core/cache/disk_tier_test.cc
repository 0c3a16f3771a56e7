// The disk tier: entries survive a reopen, damaged or torn files are never served, and the
// scavenger keeps usage between the watermarks.
#include "core/cache/disk_tier.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "core/cache/cache_key.h"

namespace harrow::cache {
namespace {

namespace fs = std::filesystem;

class DiskTierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/harrow-disk-tier-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  static StoredResponse entry(const std::string& url, size_t body) {
    StoredResponse e;
    e.host = "h";
    e.url = url;
    e.primary_key = "f\x1fh\x1f" + url;
    e.status = 200;
    e.reason = "OK";
    e.fields = {{"Content-Type", "text/plain"}, {"ETag", "\"1\""}};
    e.etag = "\"1\"";
    e.lifetime = 60;
    e.response_time = 1000;
    for (size_t i = 0; i < body; ++i) e.body.push_back(static_cast<char>('a' + i % 26));
    return e;
  }

  std::vector<fs::path> files() {
    std::vector<fs::path> out;
    for (const auto& f : fs::directory_iterator(dir_)) out.push_back(f.path());
    return out;
  }

  std::string dir_;
};

TEST_F(DiskTierTest, RoundTripAndReopen) {
  StoredResponse a = entry("/a", 5000);
  a.vary = {"accept-encoding"};
  std::vector<HeaderField> gzip = {{"Accept-Encoding", "gzip"}};
  a.secondary_key = secondary_key(a.vary, gzip);
  {
    DiskTier disk(dir_, 0, 80, 90);
    std::string error;
    ASSERT_TRUE(disk.open(error)) << error;
    ASSERT_TRUE(disk.write(a));
    EXPECT_EQ(disk.read(a.primary_key, {}), nullptr);  // another variant
  }
  DiskTier again(dir_, 0, 80, 90);
  std::string error;
  ASSERT_TRUE(again.open(error));
  EXPECT_EQ(again.entries(), 1u);
  EntryPtr back = again.read(a.primary_key, gzip);
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(back->body, a.body);
  EXPECT_EQ(back->fields, a.fields);
  EXPECT_EQ(back->etag, a.etag);
  EXPECT_EQ(back->lifetime, 60);
}

TEST_F(DiskTierTest, DamagedAndTornFilesAreNeverServed) {
  DiskTier disk(dir_, 0, 80, 90);
  std::string error;
  ASSERT_TRUE(disk.open(error));
  StoredResponse a = entry("/a", 3000);
  StoredResponse b = entry("/b", 3000);
  ASSERT_TRUE(disk.write(a));
  ASSERT_TRUE(disk.write(b));
  // One file loses its tail (a torn write that was renamed anyway), one gets a flipped byte,
  // and a temporary file stands for a write a crash interrupted.
  std::vector<fs::path> paths = files();
  ASSERT_EQ(paths.size(), 2u);
  fs::resize_file(paths[0], fs::file_size(paths[0]) - 100);
  {
    std::fstream f(paths[1], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(2000);
    f.put('#');
  }
  std::ofstream(dir_ + "/tmp-1-1") << "half";
  EXPECT_EQ(disk.read(a.primary_key, {}), nullptr);
  EXPECT_EQ(disk.read(b.primary_key, {}), nullptr);
  EXPECT_EQ(disk.entries(), 0u);
  ASSERT_TRUE(disk.write(a));
  DiskTier again(dir_, 0, 80, 90);
  ASSERT_TRUE(again.open(error));
  EXPECT_EQ(again.entries(), 1u);
  EXPECT_FALSE(fs::exists(dir_ + "/tmp-1-1"));
  EXPECT_NE(again.read(a.primary_key, {}), nullptr);
}

TEST_F(DiskTierTest, ScavengesBetweenWatermarks) {
  const uint64_t bound = 100 * 1024;
  DiskTier disk(dir_, bound, 50, 90);
  std::string error;
  ASSERT_TRUE(disk.open(error));
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(disk.write(entry("/o" + std::to_string(i), 4000)));
    EXPECT_LE(disk.bytes(), bound * 90 / 100);
  }
  EXPECT_GT(disk.evictions(), 0u);
  uint64_t on_disk = 0;
  for (const fs::path& p : files()) on_disk += fs::file_size(p);
  EXPECT_EQ(on_disk, disk.bytes());
  // The newest survive, the oldest went.
  EXPECT_NE(disk.read("f\x1fh\x1f/o99", {}), nullptr);
  EXPECT_EQ(disk.read("f\x1fh\x1f/o0", {}), nullptr);
  EXPECT_EQ(disk.purge("h", "/o99", false), 1u);
  EXPECT_EQ(disk.read("f\x1fh\x1f/o99", {}), nullptr);
}

TEST(DiskFormat, TheSeedFileOfTheFuzzCorpusReads) {
  // Written independently of serialize() (by hand, in Python): the format stays readable.
  std::ifstream f(std::string(HARROW_TEST_DATA_DIR) + "/../fuzz/corpus/cache/disk_file",
                  std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::shared_ptr<StoredResponse> e = deserialize(bytes);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->body, "hello, cache");
  EXPECT_EQ(e->vary, std::vector<std::string>{"accept-encoding"});
  EXPECT_EQ(e->lifetime, 60);
  EXPECT_EQ(serialize(*e), bytes);
}

TEST(DiskFormat, EveryTruncationIsRejected) {
  StoredResponse e;
  e.primary_key = "k";
  e.body = "hello";
  e.fields = {{"A", "b"}};
  std::string bytes = serialize(e);
  ASSERT_NE(deserialize(bytes), nullptr);
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_EQ(deserialize(std::string_view(bytes).substr(0, n)), nullptr) << n;
  }
}

}  // namespace
}  // namespace harrow::cache
