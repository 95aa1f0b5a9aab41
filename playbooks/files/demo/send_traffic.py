"""Send the rows of a CSV file to a model service's /v1/predict, a few rows per request, like
clients would. Prints one JSON line: {"requests": N, "rows": N, "errors": N}.
usage: send_traffic.py URL CSV [ROWS_PER_REQUEST]   (bearer token from MODEL_API_TOKEN)"""

import csv
import json
import os
import sys
import urllib.request


def main(url, path, per_request=5):
    with open(path, newline="") as handle:
        rows = [dict((k, float(v)) for k, v in row.items()) for row in csv.DictReader(handle)]
    headers = {"Content-Type": "application/json"}
    if os.environ.get("MODEL_API_TOKEN"):
        headers["Authorization"] = "Bearer " + os.environ["MODEL_API_TOKEN"]
    sent = errors = 0
    for start in range(0, len(rows), per_request):
        body = json.dumps({"records": rows[start:start + per_request]}).encode()
        request = urllib.request.Request(url.rstrip("/") + "/v1/predict", data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
        except OSError:
            errors += 1
        sent += 1
    print(json.dumps({"requests": sent, "rows": len(rows), "errors": errors}))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:4])))
