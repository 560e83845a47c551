{
  "targets": [
    {
      "target_name": "sendfile",
      "sources": ["native/sendfile.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
