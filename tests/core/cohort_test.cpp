// Properties of cohorts: stable, uniform, monotone in the share, independent
// across rollouts, and proportional within every stratum. All inputs are fixed
// (ids and seeds in the code), so every statistical check below either always
// passes or always fails; the thresholds are ones a fair hash passes.
#include "core/cohort.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace tranche::core {
namespace {

constexpr std::uint32_t kFleet = 1'000'000;

// "device-0000042": the kind of sequential ids a fleet inventory hands out, the
// worst case for a weak hash (inputs differ in a byte or two).
std::string device(std::uint32_t i, const char* prefix = "device-") {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%s%07u", prefix, i);
  return buf;
}

// Pearson's chi-square statistic of observed counts against equal expectations.
double chi_square(const std::vector<std::uint64_t>& counts) {
  double total = 0;
  for (auto c : counts) total += static_cast<double>(c);
  const double expected = total / static_cast<double>(counts.size());
  double chi2 = 0;
  for (auto c : counts) {
    const double d = static_cast<double>(c) - expected;
    chi2 += d * d / expected;
  }
  return chi2;
}

// |observed - n p| within `sds` standard deviations of Binomial(n, p).
void expect_binomial(std::uint64_t observed, std::uint64_t n, double p, double sds,
                     const std::string& what) {
  const double mean = static_cast<double>(n) * p;
  const double sd = std::sqrt(mean * (1 - p));
  EXPECT_LE(std::abs(static_cast<double>(observed) - mean), sds * sd)
      << what << ": observed " << observed << ", expected " << mean << " +- " << sds << " sd ("
      << sd << ")";
}

// --- stable --------------------------------------------------------------------------

// Computed once with the shipped hash and pinned. If one of these fails, the hash
// changed, and with it the cohort of every device of every running rollout:
// devices would fall out of stages they were admitted to. Do not "fix" the
// numbers; revert the hash change.
TEST(CohortTest, SaltsArePinned) {
  EXPECT_EQ(rollout_salt("r-2024-07-19-content-291"), 0xe59ac53ee08e0226ULL);
  EXPECT_EQ(rollout_salt("canary"), 0xcf0dc5125c080beaULL);
  EXPECT_EQ(rollout_salt("rollout-1"), 0x5bb10c2a7ae380e2ULL);
}

TEST(CohortTest, BucketsArePinned) {
  struct Vector {
    const char* device;
    const char* rollout;
    std::uint32_t bucket;
  };
  const Vector vectors[] = {
      {"host-000001", "r-2024-07-19-content-291", 98191},
      {"laptop-emea-4711", "r-2024-07-19-content-291", 651245},
      {"srv-apac-0099", "r-2024-07-19-content-291", 738495},
      {"a", "r-2024-07-19-content-291", 874174},
      {"0123456789abcdef0123456789abcdef", "r-2024-07-19-content-291", 696964},
      {"host-000001", "canary", 458591},
      {"laptop-emea-4711", "canary", 172390},
      {"srv-apac-0099", "canary", 166653},
      {"a", "canary", 491614},
      {"host-000001", "rollout-1", 50455},
      {"srv-apac-0099", "rollout-1", 713512},
  };
  for (const auto& v : vectors) {
    EXPECT_EQ(cohort_bucket(v.device, rollout_salt(v.rollout)), v.bucket)
        << v.device << " in " << v.rollout;
  }
  EXPECT_EQ(cohort_bucket("host-000001", 0), 273910u);
  EXPECT_EQ(cohort_bucket("", 0), 504867u);
}

TEST(CohortTest, SameInputSameBucketAndAlwaysInRange) {
  std::mt19937_64 rng(20240719);
  for (int i = 0; i < 10'000; ++i) {
    const std::uint64_t salt = i == 0 ? 0 : i == 1 ? ~std::uint64_t{0} : rng();
    const std::string id = device(static_cast<std::uint32_t>(rng() % kFleet));
    const std::uint32_t b = cohort_bucket(id, salt);
    EXPECT_LT(b, kBucketCount);
    EXPECT_EQ(b, cohort_bucket(id, salt));
  }
}

// --- uniform -------------------------------------------------------------------------

// 1,000,000 sequential ids into 1,000 equal bucket ranges. Critical value of
// chi-square with 999 degrees of freedom at p = 0.001 is 1142.9 (Wilson-Hilferty);
// a fair hash lands near 999 +- 45.
TEST(CohortTest, UniformOverTheWholeRange) {
  constexpr double kCritical999 = 1142.9;
  const char* prefixes[] = {"device-", "WIN-LAPTOP-"};
  const char* rollouts[] = {"r-2024-07-19-content-291", "rollout-2"};
  for (int k = 0; k < 2; ++k) {
    const std::uint64_t salt = rollout_salt(rollouts[k]);
    std::vector<std::uint64_t> counts(1000, 0);
    for (std::uint32_t i = 0; i < kFleet; ++i) {
      ++counts[cohort_bucket(device(i, prefixes[k]), salt) / 1000];
    }
    EXPECT_LT(chi_square(counts), kCritical999) << prefixes[k] << " / " << rollouts[k];
  }
}

// The first ring lives in the lowest 0.1%-1% of buckets: uniformity must hold
// there too, not only on average. The 10,000 buckets below 1% into 100 ranges:
// critical value of chi-square with 99 degrees of freedom at p = 0.001 is 148.3.
TEST(CohortTest, UniformAtTheLowEndWhereCanariesLive) {
  constexpr double kCritical99 = 148.3;
  const std::uint64_t salt = rollout_salt("canary");
  std::vector<std::uint64_t> counts(100, 0);
  std::uint64_t admitted_01 = 0;  // in a 0.1% stage
  for (std::uint32_t i = 0; i < kFleet; ++i) {
    const std::uint32_t b = cohort_bucket(device(i), salt);
    if (b < 10'000) ++counts[b / 100];
    if (bucket_admitted(b, Ppm::from_ppm(1'000))) ++admitted_01;
  }
  EXPECT_LT(chi_square(counts), kCritical99);
  expect_binomial(admitted_01, kFleet, 0.001, 5, "0.1% stage");
}

// --- monotone ------------------------------------------------------------------------

TEST(CohortTest, AdmittedAtAShareMeansAdmittedAtEveryLargerShare) {
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<std::uint32_t> share(0, Ppm::kWhole);
  std::uniform_int_distribution<int> length(1, 40);
  std::uniform_int_distribution<int> letter('0', 'z');
  for (int i = 0; i < 20'000; ++i) {
    std::string id(static_cast<std::size_t>(length(rng)), ' ');
    for (char& c : id) c = static_cast<char>(letter(rng));
    const std::uint32_t b = cohort_bucket(id, rng());
    std::uint32_t p = share(rng);
    std::uint32_t q = share(rng);
    if (q < p) std::swap(p, q);
    if (bucket_admitted(b, Ppm::from_ppm(p))) {
      EXPECT_TRUE(bucket_admitted(b, Ppm::from_ppm(q))) << id << " p=" << p << " q=" << q;
    }
  }
}

TEST(CohortTest, StagesOfAPlanAreNested) {
  const std::uint64_t salt = rollout_salt("nested");
  const std::array<std::uint32_t, 6> stages = {0, 1'000, 10'000, 100'000, 500'000, Ppm::kWhole};
  std::array<std::uint64_t, 6> admitted{};
  for (std::uint32_t i = 0; i < 200'000; ++i) {
    const std::uint32_t b = cohort_bucket(device(i), salt);
    bool before = false;
    for (std::size_t s = 0; s < stages.size(); ++s) {
      const bool in = bucket_admitted(b, Ppm::from_ppm(stages[s]));
      EXPECT_TRUE(!before || in) << "device " << i << " left at stage " << s;
      before = in;
      admitted[s] += in ? 1u : 0u;
    }
  }
  EXPECT_EQ(admitted.front(), 0u);       // 0% admits nobody
  EXPECT_EQ(admitted.back(), 200'000u);  // 100% admits everybody
}

// --- independent across rollouts ----------------------------------------------------

// Devices in the 1% stage of one rollout are in the 1% stage of another about
// 1% of the time (so the same machines are not always the canaries): out of
// 1,000,000, Binomial(10^6, 10^-4), 100 +- 10; bound 5 sd. Salts of consecutive
// rollout ids are the hardest case.
TEST(CohortTest, OverlapOfTwoRolloutsIsTheProductOfTheirShares) {
  const char* ids[] = {"rollout-1", "rollout-2", "rollout-3", "rollout-4"};
  std::vector<std::vector<bool>> in1(4), in50(4);
  for (std::size_t r = 0; r < 4; ++r) {
    const std::uint64_t salt = rollout_salt(ids[r]);
    in1[r].resize(kFleet);
    in50[r].resize(kFleet);
    for (std::uint32_t i = 0; i < kFleet; ++i) {
      const std::uint32_t b = cohort_bucket(device(i), salt);
      in1[r][i] = b < 10'000;
      in50[r][i] = b < 500'000;
    }
  }
  for (std::size_t a = 0; a < 4; ++a) {
    for (std::size_t b = a + 1; b < 4; ++b) {
      std::uint64_t both1 = 0;
      std::uint64_t both50 = 0;
      for (std::uint32_t i = 0; i < kFleet; ++i) {
        both1 += (in1[a][i] && in1[b][i]) ? 1u : 0u;
        both50 += (in50[a][i] && in50[b][i]) ? 1u : 0u;
      }
      const std::string pair = std::string(ids[a]) + " x " + ids[b];
      expect_binomial(both1, kFleet, 1e-4, 5, pair + " at 1%");
      expect_binomial(both50, kFleet, 0.25, 5, pair + " at 50%");
    }
  }
}

// --- stratified ----------------------------------------------------------------------

// Strata of very different sizes (as OS builds are); each gets its share of a
// stage within 5 sd of Binomial(stratum size, share).
TEST(CohortTest, EveryStratumGetsItsShare) {
  const char* names[] = {"win11-23h2", "win10-22h2", "win11-22h2", "server-2019", "server-2016"};
  const double weights[] = {0.40, 0.30, 0.20, 0.09, 0.01};
  std::mt19937 rng(7);
  std::discrete_distribution<std::size_t> pick(std::begin(weights), std::end(weights));
  const std::uint64_t salt = rollout_salt("stratified");
  const std::array<std::uint32_t, 3> shares = {10'000, 100'000, 500'000};
  std::array<std::uint64_t, 5> size{};
  std::array<std::array<std::uint64_t, 3>, 5> admitted{};
  for (std::uint32_t i = 0; i < kFleet; ++i) {
    const std::size_t s = pick(rng);
    ++size[s];
    const std::uint32_t b = cohort_bucket(device(i), salt);
    for (std::size_t k = 0; k < shares.size(); ++k) {
      admitted[s][k] += bucket_admitted(b, Ppm::from_ppm(shares[k])) ? 1u : 0u;
    }
  }
  for (std::size_t s = 0; s < 5; ++s) {
    ASSERT_GT(size[s], 5'000u) << names[s];
    for (std::size_t k = 0; k < shares.size(); ++k) {
      expect_binomial(admitted[s][k], size[s], shares[k] / 1e6, 5,
                      std::string(names[s]) + " at " + Ppm::from_ppm(shares[k]).to_string());
    }
  }
}

// --- effective share -----------------------------------------------------------------

TEST(EffectiveShareTest, RaisesTheShareToReachMinDevices) {
  const Ppm p01 = Ppm::from_ppm(1'000);
  // 0.1% of 10,000 is 10; 50 devices need 0.5%.
  EXPECT_EQ(effective_share(p01, 50, 10'000).value(), 5'000u);
  // Rounds up: 50 of 30,000 is 0.1666...%, never below the minimum.
  EXPECT_EQ(effective_share(p01, 50, 30'000).value(), 1'667u);
  // The percent already admits enough: unchanged.
  EXPECT_EQ(effective_share(p01, 50, 1'000'000).value(), 1'000u);
  EXPECT_EQ(effective_share(p01, 0, 10).value(), 1'000u);
}

TEST(EffectiveShareTest, NeverAbove100PercentAndNeverBelowThePercent) {
  const Ppm p50 = Ppm::from_ppm(500'000);
  EXPECT_EQ(effective_share(p50, 50, 10).value(), Ppm::kWhole);  // fewer eligible than needed
  EXPECT_EQ(effective_share(p50, 50, 50).value(), Ppm::kWhole);
  EXPECT_EQ(effective_share(p50, 50, 0).value(), 500'000u);  // nothing to admit
  std::mt19937_64 rng(3);
  for (int i = 0; i < 10'000; ++i) {
    const Ppm p = Ppm::from_ppm(static_cast<std::uint32_t>(rng() % (Ppm::kWhole + 1)));
    const auto min = static_cast<std::uint32_t>(rng() % 5'000);
    const std::uint64_t eligible = 1 + rng() % 10'000'000;
    const Ppm e = effective_share(p, min, eligible);
    EXPECT_GE(e.value(), p.value());
    EXPECT_LE(e.value(), Ppm::kWhole);
    // The expected count admitted reaches the minimum (or everybody is in).
    const double expected = static_cast<double>(e.value()) / 1e6 * static_cast<double>(eligible);
    if (e.value() < Ppm::kWhole) {
      EXPECT_GE(expected + 1e-6, static_cast<double>(min)) << min << " of " << eligible;
    }
  }
}

}  // namespace
}  // namespace tranche::core
