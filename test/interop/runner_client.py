"""An independent gRPC client of the Runner service (grpcio's C core and Python protobuf),
standing in for bb_worker's grpc-go client. Usage: runner_client.py GENERATED_DIR SOCKET
INPUT_ROOT. Prints one JSON object with what the service answered."""
import json
import sys

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
from google.protobuf import empty_pb2  # noqa: E402
from buildbarn.resourceusage import resourceusage_pb2  # noqa: E402
from buildbarn.runner import runner_pb2  # noqa: E402

socket, input_root = sys.argv[2], sys.argv[3]
channel = grpc.insecure_channel(f"unix://{socket}")
check_readiness = channel.unary_unary(
    "/buildbarn.runner.Runner/CheckReadiness",
    request_serializer=runner_pb2.CheckReadinessRequest.SerializeToString,
    response_deserializer=empty_pb2.Empty.FromString,
)
run = channel.unary_unary(
    "/buildbarn.runner.Runner/Run",
    request_serializer=runner_pb2.RunRequest.SerializeToString,
    response_deserializer=runner_pb2.RunResponse.FromString,
)

result = {}
check_readiness(runner_pb2.CheckReadinessRequest(path=input_root), timeout=10)
result["readiness"] = "ok"
try:
    check_readiness(runner_pb2.CheckReadinessRequest(path="missing"), timeout=10)
    result["missing"] = "ok"
except grpc.RpcError as error:
    result["missing"] = error.code().name

response = run(
    runner_pb2.RunRequest(
        arguments=["sh", "-c", "readlink /proc/self/exe; kill -SEGV $$"],
        environment_variables={"PATH": "/bin"},
        input_root_directory=input_root,
        stdout_path="stdout",
        stderr_path="stderr",
    ),
    timeout=10,
)
result["exitCode"] = response.exit_code
for usage in response.resource_usage:
    # Ours (chrootrunner.resourceusage.CgroupResourceUsage) follows Buildbarn's when the
    # action had a cgroup: a client that knows only Buildbarn's skips it.
    if not usage.Is(resourceusage_pb2.POSIXResourceUsage.DESCRIPTOR):
        continue
    posix = resourceusage_pb2.POSIXResourceUsage()
    result["typeUrl"] = usage.type_url
    usage.Unpack(posix)
    result["terminationSignal"] = posix.termination_signal
    result["maximumResidentSetSize"] = posix.maximum_resident_set_size
try:
    run(runner_pb2.RunRequest(input_root_directory=input_root), timeout=10)
except grpc.RpcError as error:
    result["noArguments"] = [error.code().name, error.details()]
channel.close()
print(json.dumps(result))
