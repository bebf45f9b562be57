#!/usr/bin/env bash
# Fetch Apache Kafka's broker class path (the jars pinned in deploy/kafka/pom.xml) from Maven Central.
#
#   deploy/kafka/fetch-jars.sh [OUTDIR]      OUTDIR defaults to <repo root>/.cache/kafka/libs
#
# Idempotent: Maven's local repository (~/.m2) caches downloads, and jars no longer named by the pom are
# removed from OUTDIR so the class path never mixes two Kafka versions. Quiet unless something fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"
outdir="${1:-$repo_root/.cache/kafka/libs}"

die() { echo "fetch-jars.sh: error: $*" >&2; exit 1; }

command -v java >/dev/null 2>&1 || die "java not found on PATH: Apache Kafka 4.x needs Java 17+ (Debian: apt-get install openjdk-17-jre-headless)"
command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH: install Maven 3.8+ (Debian: apt-get install maven)"

java_major="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p')"
[[ "${java_major%%.*}" =~ ^[0-9]+$ ]] || die "could not read the Java version from 'java -XshowSettings:properties'"
(( ${java_major%%.*} >= 17 )) || die "java is version $java_major: Apache Kafka 4.x needs Java 17+"

mkdir -p "$outdir"
outdir="$(cd "$outdir" && pwd)"
staging="$(mktemp -d "${TMPDIR:-/tmp}/varstream-kafka-jars.XXXXXX")"
trap 'rm -rf "$staging"' EXIT

# Copy into a fresh staging folder first, so a failed download never leaves OUTDIR half-updated.
log="$staging/mvn.log"
if ! mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$staging/libs" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "mvn could not resolve the jars in $here/pom.xml (is Maven Central reachable?)"
fi
ls "$staging/libs"/kafka_2.13-*.jar >/dev/null 2>&1 || die "mvn ran but no kafka_2.13 jar was copied to $staging/libs"

# Swap in the new set: drop stale jars, add new or changed ones.
for jar in "$outdir"/*.jar; do
    [[ -e "$jar" ]] || continue
    [[ -e "$staging/libs/$(basename "$jar")" ]] || rm -f "$jar"
done
for jar in "$staging/libs"/*.jar; do
    cmp -s "$jar" "$outdir/$(basename "$jar")" 2>/dev/null || cp -f "$jar" "$outdir/"
done
