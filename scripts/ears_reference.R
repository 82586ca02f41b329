#!/usr/bin/env Rscript
# Reference upper bounds and alarms for EARS C1/C2/C3 from R's surveillance::earsC.
#
# Writes the fixtures that tests/test_detect.py compares pipeline.detect.ears against
# (CI has no R, so the CSVs are committed). Regenerate with:
#
#   apt-get install -y r-cran-surveillance
#   Rscript scripts/ears_reference.R tests/data/ears
#
# Output: cases.csv (one row per series: name, baseline, min_sigma, alpha; alpha NA means
# earsC's per-method default) and <name>.csv per series with columns
# t (1-based day), observed, ub_c1, alarm_c1, ub_c2, alarm_c2, ub_c3, alarm_c3.
# Days outside earsC's default range (not enough history) are written as "none"; NA/NaN
# results of earsC itself are written as "NA" (upper bound) and "NA" (alarm).

suppressMessages(library(surveillance))

args <- commandArgs(trailingOnly = TRUE)
out_dir <- if (length(args) >= 1) args[[1]] else "tests/data/ears"
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

fmt_num <- function(x) ifelse(is.na(x), "NA", sprintf("%.17g", x))
fmt_lgl <- function(x) ifelse(is.na(x), "NA", ifelse(x, "TRUE", "FALSE"))

run_method <- function(y, method, baseline, min_sigma, alpha) {
  control <- list(method = method, baseline = baseline, minSigma = min_sigma)
  if (!is.na(alpha)) control$alpha <- alpha
  res <- earsC(sts(observed = y), control = control)
  max_lag <- switch(method, C1 = baseline, C2 = baseline + 2, C3 = baseline + 4)
  ub <- rep("none", length(y))
  al <- rep("none", length(y))
  idx <- (max_lag + 1):length(y)
  ub[idx] <- fmt_num(as.vector(upperbound(res)))
  al[idx] <- fmt_lgl(as.vector(res@alarm))
  list(ub = ub, alarm = al)
}

write_case <- function(name, y, baseline = 7, min_sigma = 0, alpha = NA) {
  cols <- list(t = seq_along(y), observed = fmt_num(y))
  for (m in c("C1", "C2", "C3")) {
    r <- run_method(y, m, baseline, min_sigma, alpha)
    cols[[paste0("ub_", tolower(m))]] <- r$ub
    cols[[paste0("alarm_", tolower(m))]] <- r$alarm
  }
  write.csv(as.data.frame(cols, stringsAsFactors = FALSE),
            file.path(out_dir, paste0(name, ".csv")), row.names = FALSE, quote = FALSE)
  data.frame(name = name, baseline = baseline, min_sigma = min_sigma,
             alpha = ifelse(is.na(alpha), "NA", format(alpha)), stringsAsFactors = FALSE)
}

# Poisson series with a few injected spikes (and sometimes a short outbreak).
poisson_with_spikes <- function(seed) {
  set.seed(seed)
  n <- sample(60:120, 1)
  lambda <- sample(c(1, 3, 8, 25), 1)
  y <- rpois(n, lambda)
  for (d in sample(15:n, sample(2:4, 1))) y[d] <- y[d] + rpois(1, 4 * lambda + 3)
  start <- sample(20:(n - 5), 1)
  y[start:(start + 2)] <- y[start:(start + 2)] + rpois(3, 2 * lambda + 2)
  y
}

cases <- list()
for (seed in 1:8) {
  cases[[length(cases) + 1]] <- write_case(sprintf("poisson_seed%d", seed),
                                           poisson_with_spikes(seed))
}

# Mostly zeros: zero-variance baselines, 0/0 and x/0 C2 statistics.
set.seed(101)
y <- rep(0, 90)
y[c(12, 30, 31, 55)] <- c(1, 3, 6, 2)
y[70:75] <- c(0, 1, 0, 4, 9, 1)
cases[[length(cases) + 1]] <- write_case("zeros_sparse", y)

# Constant stretches (non-zero and zero) between Poisson noise, spikes on and after them.
set.seed(102)
y <- c(rep(4, 20), 9, rpois(25, 4), rep(0, 14), 5, 0, 0, rep(2, 12), 2, 7, rpois(20, 2))
cases[[length(cases) + 1]] <- write_case("constant_stretches", y)

# Slowly rising trend, non-integer values (rates), one spike.
set.seed(103)
y <- round(rpois(100, seq(5, 25, length.out = 100)) / 7, 4)
y[80] <- y[80] + 6
cases[[length(cases) + 1]] <- write_case("float_trend", y)

# Non-default control parameters.
cases[[length(cases) + 1]] <- write_case("params_b5_sigma05", poisson_with_spikes(201),
                                         baseline = 5, min_sigma = 0.5)
cases[[length(cases) + 1]] <- write_case("params_b10_alpha01", poisson_with_spikes(202),
                                         baseline = 10, alpha = 0.01)
set.seed(203)
y <- c(rep(0, 30), rpois(40, 0.4), rep(1, 10), 6, 0, 5, 0, 0)
cases[[length(cases) + 1]] <- write_case("params_b3_sigma1_sparse", y,
                                         baseline = 3, min_sigma = 1)

write.csv(do.call(rbind, cases), file.path(out_dir, "cases.csv"), row.names = FALSE,
          quote = FALSE)
cat(sprintf("wrote %d cases to %s (surveillance %s)\n", length(cases), out_dir,
            as.character(packageVersion("surveillance"))))
