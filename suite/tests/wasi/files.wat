;; A hand-written WASI command for the C/R tests of WASI state (test_snapshot_wasi_programs.py,
;; test_migrate.py): stdout and stderr output, a file created in the preopened directory (fd 3),
;; written line by line while it stays open, read back from offset 0 after a seek, an optional
;; input file "in.txt" copied to stdout, and proc_exit(7).  A checkpoint anywhere in it holds an
;; open file at some offset, output so far and a changed filesystem.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_seek" (func $fd_seek (param i32 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "out.txt")
  (data (i32.const 80) "in.txt")
  (data (i32.const 100) "hello\n")
  (data (i32.const 200) "line X\n")
  ;; fd_write of one buffer; the iovec at 0, the count at 16
  (func $write (param $fd i32) (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 16)))
  ;; fd_read into one buffer: the number of bytes read
  (func $read (param $fd i32) (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (if (call $fd_read (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 16))
      (then (return (i32.const 0))))
    (i32.load (i32.const 16)))
  (func (export "_start")
    (local $fd i32) (local $i i32)
    (drop (call $write (i32.const 1) (i32.const 100) (i32.const 6)))
    ;; out.txt: O_CREAT | O_TRUNC, rights fd_read | fd_seek | fd_tell | fd_write
    (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 7) (i32.const 9)
              (i64.const 102) (i64.const 102) (i32.const 0) (i32.const 24))
      (then (call $proc_exit (i32.const 99))))
    (local.set $fd (i32.load (i32.const 24)))
    (loop $l
      (i32.store8 (i32.const 205) (i32.add (i32.const 48) (local.get $i)))
      (drop (call $write (local.get $fd) (i32.const 200) (i32.const 7)))
      (drop (call $write (i32.const 2) (i32.const 205) (i32.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 10))))
    (drop (call $fd_seek (local.get $fd) (i64.const 0) (i32.const 0) (i32.const 32)))
    (drop (call $write (i32.const 1) (i32.const 1024) (call $read (local.get $fd) (i32.const 1024) (i32.const 512))))
    (drop (call $fd_close (local.get $fd)))
    ;; in.txt, when there is one: copied to stdout
    (if (i32.eqz (call $path_open (i32.const 3) (i32.const 0) (i32.const 80) (i32.const 6) (i32.const 0)
                       (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 24)))
      (then
        (local.set $fd (i32.load (i32.const 24)))
        (drop (call $write (i32.const 1) (i32.const 2048) (call $read (local.get $fd) (i32.const 2048) (i32.const 512))))
        (drop (call $fd_close (local.get $fd)))))
    (call $proc_exit (i32.const 7))))
