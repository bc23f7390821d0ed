// deploy/: the Dockerfile and the Kubernetes manifests are well-formed and
// agree with the image `asmsrv image` writes and with the spec defaults.
// (No container engine or cluster runs here: image_test.cc runs the image.)
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli.h"
#include "spec.h"
#include "test_util.h"

namespace asmsrv::test {
namespace {

using json = nlohmann::ordered_json;

std::string deploy(const std::string& path) { return source_dir() + "/deploy/" + path; }

/// The documents of a YAML file, read by PyYAML (python3-yaml), as JSON;
/// or, in `skip`, why they cannot be read here (no python3 or PyYAML).
struct Yaml {
  json docs;
  std::string skip;
};

Yaml load_yaml(const std::string& path) {
  CmdResult r = run({"python3", "-c",
                     "import json, sys, yaml\n"
                     "print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
                     path});
  if (r.status == 127 || r.err.find("No module named 'yaml'") != std::string::npos)
    return {json(), "python3 with PyYAML (python3-yaml) is needed: " + r.err};
  EXPECT_EQ(r.status, 0) << path << ": " << r.err;
  return {r.status == 0 ? json::parse(r.out) : json::array(), ""};
}

/// The Dockerfile's instructions: "USER" -> its arguments, with comments
/// dropped, continued lines joined and runs of spaces made one.
std::map<std::string, std::string> dockerfile(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line, joined;
  while (std::getline(in, line)) {
    if (line.starts_with("#")) continue;
    if (line.ends_with("\\")) {
      joined += line.substr(0, line.size() - 1);
      continue;
    }
    joined += line;
    for (size_t i; (i = joined.find("  ")) != std::string::npos;) joined.erase(i, 1);
    size_t space = joined.find(' ');
    if (space != std::string::npos) {
      std::string word = joined.substr(0, space);
      EXPECT_EQ(out.count(word), 0u) << "two " << word << " lines";
      out[word] = joined.substr(joined.find_first_not_of(' ', space));
    }
    joined.clear();
  }
  return out;
}

std::string exec_form(const std::vector<std::string>& words) {
  std::string out = "[";
  for (const std::string& w : words) out += (out.size() > 1 ? ", \"" : "\"") + w + "\"";
  return out + "]";
}

TEST(Deploy, DockerfileDescribesTheImageAsmsrvWrites) {
  std::map<std::string, std::string> d = dockerfile(read(deploy("Dockerfile")));
  Spec defaults;
  ImageConfig image = server_image_config(defaults, 0);
  EXPECT_EQ(d["FROM"], "scratch");
  EXPECT_EQ(d["COPY"], "server " + image.entrypoint[0]);
  EXPECT_EQ(d["USER"], image.user);
  EXPECT_EQ(d["EXPOSE"], std::to_string(defaults.port));
  EXPECT_EQ(d["STOPSIGNAL"], image.stop_signal);
  EXPECT_EQ(d["ENTRYPOINT"], exec_form(image.entrypoint));
  // The health check asmsrv puts in an image whose spec has a probe.
  Healthcheck h = probe_healthcheck(::asmsrv::Probe{}.timeout_ms);
  EXPECT_EQ(d["HEALTHCHECK"], "--interval=" + std::to_string(h.interval_ms / 1000) + "s --timeout=" +
                                  std::to_string(h.timeout_ms / 1000) + "s --start-period=" +
                                  std::to_string(h.start_period_ms / 1000) + "s --retries=" +
                                  std::to_string(h.retries) + " CMD " + exec_form(h.command));
}

TEST(Deploy, KubernetesDeployment) {
  Yaml yaml = load_yaml(deploy("k8s/deployment.yaml"));
  if (!yaml.skip.empty()) GTEST_SKIP() << yaml.skip;
  const json& docs = yaml.docs;
  ASSERT_EQ(docs.size(), 1u);
  const json& d = docs[0];
  EXPECT_EQ(d["apiVersion"], "apps/v1");
  EXPECT_EQ(d["kind"], "Deployment");
  EXPECT_EQ(d["spec"]["selector"]["matchLabels"], d["spec"]["template"]["metadata"]["labels"]);
  const json& pod = d["spec"]["template"]["spec"];
  Spec defaults;
  // SIGTERM, then the server's own deadline, then a margin before SIGKILL.
  int grace_s = pod["terminationGracePeriodSeconds"];
  EXPECT_GE(grace_s * 1000, defaults.limits.shutdown_timeout_ms + 1000);
  EXPECT_EQ(pod["securityContext"]["runAsNonRoot"], true);
  std::string user = server_image_config(defaults, 0).user;
  EXPECT_EQ(std::to_string(pod["securityContext"]["runAsUser"].get<int>()) + ":" +
                std::to_string(pod["securityContext"]["runAsGroup"].get<int>()),
            user) << "the image's user";
  ASSERT_EQ(pod["containers"].size(), 1u);
  const json& c = pod["containers"][0];
  ASSERT_EQ(c["ports"].size(), 1u);
  EXPECT_EQ(c["ports"][0]["containerPort"], defaults.port);
  EXPECT_EQ(c["ports"][0]["name"], "http");
  json probe = json::array({"/server", "--probe"});
  for (const char* p : {"readinessProbe", "livenessProbe"}) {
    EXPECT_EQ(c[p]["exec"]["command"], probe) << p;
    EXPECT_GE(c[p]["timeoutSeconds"].get<int>() * 1000, probe_healthcheck(::asmsrv::Probe{}.timeout_ms).timeout_ms) << p;
  }
  EXPECT_EQ(c["securityContext"]["allowPrivilegeEscalation"], false);
  EXPECT_EQ(c["securityContext"]["readOnlyRootFilesystem"], true);
  EXPECT_EQ(c["securityContext"]["capabilities"]["drop"], json::array({"ALL"}));
  for (const char* r : {"requests", "limits"})
    for (const char* what : {"cpu", "memory"})
      EXPECT_TRUE(c["resources"][r].contains(what)) << r << "." << what;
}

TEST(Deploy, KubernetesServiceSelectsTheDeployment) {
  Yaml service = load_yaml(deploy("k8s/service.yaml"));
  if (!service.skip.empty()) GTEST_SKIP() << service.skip;
  const json& services = service.docs;
  const json deployments = load_yaml(deploy("k8s/deployment.yaml")).docs;
  ASSERT_EQ(services.size(), 1u);
  const json& s = services[0];
  EXPECT_EQ(s["apiVersion"], "v1");
  EXPECT_EQ(s["kind"], "Service");
  EXPECT_EQ(s["spec"]["selector"], deployments[0]["spec"]["template"]["metadata"]["labels"]);
  ASSERT_EQ(s["spec"]["ports"].size(), 1u);
  EXPECT_EQ(s["spec"]["ports"][0]["targetPort"],
            deployments[0]["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"]);
}

}  // namespace
}  // namespace asmsrv::test
