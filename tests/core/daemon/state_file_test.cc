#include "core/daemon/state_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace harrow {
namespace {

using health::Availability;

TEST(StateFile, ParsesWhatItWritesAndSkipsWhatItCannotRead) {
  std::string text =
      "# harrow state 1\n"
      "shop\t10.0.0.1:80\thealthy\tavailable\n"
      "shop\t10.0.0.2:80\tunhealthy\tavailable\n"
      "api\t10.0.1.1:8080\thealthy\tdraining\n"
      "api\t10.0.1.2:8080\tunhealthy\tunavailable\n"
      "api\t10.0.1.3:8080\tsick\tavailable\n"  // unknown health
      "api\t10.0.1.4:8080\thealthy\tgone\n"    // unknown availability
      "api\t10.0.1.5:8080\thealthy\n"          // a field short
      "\n";
  std::vector<SavedServerState> got = parse_state(text);
  std::vector<SavedServerState> want = {
      {"shop", "10.0.0.1:80", true, Availability::Available},
      {"shop", "10.0.0.2:80", false, Availability::Available},
      {"api", "10.0.1.1:8080", true, Availability::Draining},
      {"api", "10.0.1.2:8080", false, Availability::Unavailable},
  };
  EXPECT_EQ(got, want);
}

TEST(StateFile, WritesAtomicallyAndReadsBack) {
  char dir[] = "/tmp/harrow-state-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/state";
  std::string text, error;
  ASSERT_TRUE(read_state_file(path, text, error)) << error;  // missing: no state, no error
  EXPECT_EQ(text, "");
  ASSERT_TRUE(write_state_file(path, "# harrow state 1\nf\ts:1\thealthy\tavailable\n", error))
      << error;
  ASSERT_TRUE(write_state_file(path, "# harrow state 1\nf\ts:1\tunhealthy\tavailable\n", error))
      << error;
  ASSERT_TRUE(read_state_file(path, text, error)) << error;
  EXPECT_EQ(text, "# harrow state 1\nf\ts:1\tunhealthy\tavailable\n");
  struct stat st {};
  EXPECT_NE(::stat((path + ".tmp").c_str(), &st), 0);  // renamed away, nothing left behind
  ::unlink(path.c_str());
  ::rmdir(dir);
  // A directory that does not exist: the error names the file.
  EXPECT_FALSE(write_state_file(path, "x", error));
  EXPECT_NE(error.find(path + ".tmp"), std::string::npos) << error;
}

}  // namespace
}  // namespace harrow
