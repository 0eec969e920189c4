;; Elementwise loops over float32 lanes for the wasm backend (called from wasm-elementwise.ts through
;; wasm-pool.ts, on two threads). The stock kernels are scalar and single-threaded; a training step
;; spends ~15 ms of ~80 in them on a first conv layer's activations (128 x 26 x 26 x 32 floats, 11 MB
;; each), memory-bound. Each keeps the cpu kernel's semantics lane by lane (IEEE ops; relu and step keep
;; NaN).
;;
;; <op>_vv(a, b, out, rows, rowBytes, bRow): out = a op b over $rows rows of $rowBytes, b advancing $bRow
;; bytes per row ($rowBytes: the same shape; 0: a bias repeated on every row).
;; <op>_vs: b is one float, splatted. <op>_sv: a is.
;; Built by scripts/build-kernels.ts with the memory import shared and not.
(module
  (import "env" "mem" (memory 1 65536 shared))

  ;; add_vv: out = a + b, row by row (b a bias when $bRow is 0).
  (func $add_vv (export "add_vv")
    (param $a i32) (param $b i32) (param $out i32) (param $rows i32) (param $rowBytes i32) (param $bRow i32)
    (local $r i32) (local $j i32) (local $pa i32) (local $pb i32) (local $po i32) (local $s v128)
    (local.set $pa (local.get $a))
    (local.set $pb (local.get $b))
    (local.set $po (local.get $out))
    (local.set $r (i32.const 0))
    (block $done_r
      (loop $for_r
        (br_if $done_r (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $j (i32.const 0))
        (block $done_j
          (loop $for_j
            (br_if $done_j (i32.ge_u (local.get $j) (local.get $rowBytes)))
            (v128.store align=4
              (i32.add (local.get $po) (local.get $j))
              (f32x4.add
                (v128.load align=4 (i32.add (local.get $pa) (local.get $j)))
                (v128.load align=4 (i32.add (local.get $pb) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $for_j)))
        (local.set $pa (i32.add (local.get $pa) (local.get $rowBytes)))
        (local.set $po (i32.add (local.get $po) (local.get $rowBytes)))
        (local.set $pb (i32.add (local.get $pb) (local.get $bRow)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $for_r))))

  ;; add_vs: out = a + b, b one float.
  (func $add_vs (export "add_vs")
    (param $a i32) (param $b i32) (param $out i32) (param $rows i32) (param $rowBytes i32) (param $bRow i32)
    (local $r i32) (local $j i32) (local $pa i32) (local $pb i32) (local $po i32) (local $s v128)
    (local.set $pa (local.get $a))
    (local.set $pb (local.get $b))
    (local.set $po (local.get $out))
    (local.set $s (v128.load32_splat (local.get $b)))
    (local.set $r (i32.const 0))
    (block $done_r
      (loop $for_r
        (br_if $done_r (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $j (i32.const 0))
        (block $done_j
          (loop $for_j
            (br_if $done_j (i32.ge_u (local.get $j) (local.get $rowBytes)))
            (v128.store align=4
              (i32.add (local.get $po) (local.get $j))
              (f32x4.add (v128.load align=4 (i32.add (local.get $pa) (local.get $j))) (local.get $s)))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $for_j)))
        (local.set $pa (i32.add (local.get $pa) (local.get $rowBytes)))
        (local.set $po (i32.add (local.get $po) (local.get $rowBytes)))
        (local.set $pb (i32.add (local.get $pb) (local.get $bRow)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $for_r))))

  ;; add_sv: out = a + b, a one float.
  (func $add_sv (export "add_sv")
    (param $a i32) (param $b i32) (param $out i32) (param $rows i32) (param $rowBytes i32) (param $bRow i32)
    (local $r i32) (local $j i32) (local $pa i32) (local $pb i32) (local $po i32) (local $s v128)
    (local.set $pa (local.get $a))
    (local.set $pb (local.get $b))
    (local.set $po (local.get $out))
    (local.set $s (v128.load32_splat (local.get $a)))
    (local.set $r (i32.const 0))
    (block $done_r
      (loop $for_r
        (br_if $done_r (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $j (i32.const 0))
        (block $done_j
          (loop $for_j
            (br_if $done_j (i32.ge_u (local.get $j) (local.get $rowBytes)))
            (v128.store align=4
              (i32.add (local.get $po) (local.get $j))
              (f32x4.add (local.get $s) (v128.load align=4 (i32.add (local.get $pb) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $for_j)))
        (local.set $pa (i32.add (local.get $pa) (local.get $rowBytes)))
        (local.set $po (i32.add (local.get $po) (local.get $rowBytes)))
        (local.set $pb (i32.add (local.get $pb) (local.get $bRow)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $for_r))))

  ;; sub_vv: out = a - b, row by row (b a bias when $bRow is 0).
  (func $sub_vv (export "sub_vv")
    (param $a i32) (param $b i32) (param $out i32) (param $rows i32) (param $rowBytes i32) (param $bRow i32)
    (local $r i32) (local $j i32) (local $pa i32) (local $pb i32) (local $po i32) (local $s v128)
    (local.set $pa (local.get $a))
    (local.set $pb (local.get $b))
    (local.set $po (local.get $out))
    (local.set $r (i32.const 0))
    (block $done_r
      (loop $for_r
        (br_if $done_r (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $j (i32.const 0))
        (block $done_j
          (loop $for_j
            (br_if $done_j (i32.ge_u (local.get $j) (local.get $rowBytes)))
            (v128.store align=4
              (i32.add (local.get $po) (local.get $j))
              (f32x4.sub
                (v128.load align=4 (i32.add (local.get $pa) (local.get $j)))
                (v128.load align=4 (i32.add (local.get $pb) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $for_j)))
        (local.set $pa (i32.add (local.get $pa) (local.get $rowBytes)))
        (local.set $po (i32.add (local.get $po) (local.get $rowBytes)))
        (local.set $pb (i32.add (local.get $pb) (local.get $bRow)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $for_r))))

  ;; sub_vs: out = a - b, b one float.
  (func $sub_vs (export "sub_vs")
    (param $a i32) (param $b i32) (param $out i32) (param $rows i32) (param $rowBytes i32) (param $bRow i32)
    (local $r i32) (local $j i32) (local $pa i32) (local $pb i32) (local $po i32) (local $s v128)
    (local.set $pa (local.get $a))
    (local.set $pb (local.get $b))
    (local.set $po (local.get $out))
    (local.set $s (v128.load32_splat (local.get $b)))
    (local.set $r (i32.const 0))
    (block $done_r
      (loop $for_r
        (br_if $done_r (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $j (i32.const 0))
        (block $done_j
          (loop $for_j
            (br_if $done_j (i32.ge_u (local.get $j) (local.get $rowBytes)))
            (v128.store align=4
              (i32.add (local.get $po) (local.get $j))
              (f32x4.sub (v128.load align=4 (i32.add (local.get $pa) (local.get $j))) (local.get $s)))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $for_j)))
        (local.set $pa (i32.add (local.get $pa) (local.get $rowBytes)))
        (local.set $po (i32.add (local.get $po) (local.get $rowBytes)))
        (local.set $pb (i32.add (local.get $pb) (local.get $bRow)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $for_r))))

  ;; sub_sv: out = a - b, a one float.
  (func $sub_sv (export "sub_sv")
    (param $a i32) (param $b i32) (param $out i32) (param $rows i32) (param $rowBytes i32) (param $bRow i32)
    (local $r i32) (local $j i32) (local $pa i32) (local $pb i32) (local $po i32) (local $s v128)
    (local.set $pa (local.get $a))
    (local.set $pb (local.get $b))
    (local.set $po (local.get $out))
    (local.set $s (v128.load32_splat (local.get $a)))
    (local.set $r (i32.const 0))
    (block $done_r
      (loop $for_r
        (br_if $done_r (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $j (i32.const 0))
        (block $done_j
          (loop $for_j
            (br_if $done_j (i32.ge_u (local.get $j) (local.get $rowBytes)))
            (v128.store align=4
              (i32.add (local.get $po) (local.get $j))
              (f32x4.sub (local.get $s) (v128.load align=4 (i32.add (local.get $pb) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $for_j)))
        (local.set $pa (i32.add (local.get $pa) (local.get $rowBytes)))
        (local.set $po (i32.add (local.get $po) (local.get $rowBytes)))
        (local.set $pb (i32.add (local.get $pb) (local.get $bRow)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $for_r))))

  ;; mul_vv: out = a * b, row by row (b a bias when $bRow is 0).
  (func $mul_vv (export "mul_vv")
    (param $a i32) (param $b i32) (param $out i32) (param $rows i32) (param $rowBytes i32) (param $bRow i32)
    (local $r i32) (local $j i32) (local $pa i32) (local $pb i32) (local $po i32) (local $s v128)
    (local.set $pa (local.get $a))
    (local.set $pb (local.get $b))
    (local.set $po (local.get $out))
    (local.set $r (i32.const 0))
    (block $done_r
      (loop $for_r
        (br_if $done_r (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $j (i32.const 0))
        (block $done_j
          (loop $for_j
            (br_if $done_j (i32.ge_u (local.get $j) (local.get $rowBytes)))
            (v128.store align=4
              (i32.add (local.get $po) (local.get $j))
              (f32x4.mul
                (v128.load align=4 (i32.add (local.get $pa) (local.get $j)))
                (v128.load align=4 (i32.add (local.get $pb) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $for_j)))
        (local.set $pa (i32.add (local.get $pa) (local.get $rowBytes)))
        (local.set $po (i32.add (local.get $po) (local.get $rowBytes)))
        (local.set $pb (i32.add (local.get $pb) (local.get $bRow)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $for_r))))

  ;; mul_vs: out = a * b, b one float.
  (func $mul_vs (export "mul_vs")
    (param $a i32) (param $b i32) (param $out i32) (param $rows i32) (param $rowBytes i32) (param $bRow i32)
    (local $r i32) (local $j i32) (local $pa i32) (local $pb i32) (local $po i32) (local $s v128)
    (local.set $pa (local.get $a))
    (local.set $pb (local.get $b))
    (local.set $po (local.get $out))
    (local.set $s (v128.load32_splat (local.get $b)))
    (local.set $r (i32.const 0))
    (block $done_r
      (loop $for_r
        (br_if $done_r (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $j (i32.const 0))
        (block $done_j
          (loop $for_j
            (br_if $done_j (i32.ge_u (local.get $j) (local.get $rowBytes)))
            (v128.store align=4
              (i32.add (local.get $po) (local.get $j))
              (f32x4.mul (v128.load align=4 (i32.add (local.get $pa) (local.get $j))) (local.get $s)))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $for_j)))
        (local.set $pa (i32.add (local.get $pa) (local.get $rowBytes)))
        (local.set $po (i32.add (local.get $po) (local.get $rowBytes)))
        (local.set $pb (i32.add (local.get $pb) (local.get $bRow)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $for_r))))

  ;; mul_sv: out = a * b, a one float.
  (func $mul_sv (export "mul_sv")
    (param $a i32) (param $b i32) (param $out i32) (param $rows i32) (param $rowBytes i32) (param $bRow i32)
    (local $r i32) (local $j i32) (local $pa i32) (local $pb i32) (local $po i32) (local $s v128)
    (local.set $pa (local.get $a))
    (local.set $pb (local.get $b))
    (local.set $po (local.get $out))
    (local.set $s (v128.load32_splat (local.get $a)))
    (local.set $r (i32.const 0))
    (block $done_r
      (loop $for_r
        (br_if $done_r (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $j (i32.const 0))
        (block $done_j
          (loop $for_j
            (br_if $done_j (i32.ge_u (local.get $j) (local.get $rowBytes)))
            (v128.store align=4
              (i32.add (local.get $po) (local.get $j))
              (f32x4.mul (local.get $s) (v128.load align=4 (i32.add (local.get $pb) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $for_j)))
        (local.set $pa (i32.add (local.get $pa) (local.get $rowBytes)))
        (local.set $po (i32.add (local.get $po) (local.get $rowBytes)))
        (local.set $pb (i32.add (local.get $pb) (local.get $bRow)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $for_r))))

  ;; div_vv: out = a / b, row by row (b a bias when $bRow is 0).
  (func $div_vv (export "div_vv")
    (param $a i32) (param $b i32) (param $out i32) (param $rows i32) (param $rowBytes i32) (param $bRow i32)
    (local $r i32) (local $j i32) (local $pa i32) (local $pb i32) (local $po i32) (local $s v128)
    (local.set $pa (local.get $a))
    (local.set $pb (local.get $b))
    (local.set $po (local.get $out))
    (local.set $r (i32.const 0))
    (block $done_r
      (loop $for_r
        (br_if $done_r (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $j (i32.const 0))
        (block $done_j
          (loop $for_j
            (br_if $done_j (i32.ge_u (local.get $j) (local.get $rowBytes)))
            (v128.store align=4
              (i32.add (local.get $po) (local.get $j))
              (f32x4.div
                (v128.load align=4 (i32.add (local.get $pa) (local.get $j)))
                (v128.load align=4 (i32.add (local.get $pb) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $for_j)))
        (local.set $pa (i32.add (local.get $pa) (local.get $rowBytes)))
        (local.set $po (i32.add (local.get $po) (local.get $rowBytes)))
        (local.set $pb (i32.add (local.get $pb) (local.get $bRow)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $for_r))))

  ;; div_vs: out = a / b, b one float.
  (func $div_vs (export "div_vs")
    (param $a i32) (param $b i32) (param $out i32) (param $rows i32) (param $rowBytes i32) (param $bRow i32)
    (local $r i32) (local $j i32) (local $pa i32) (local $pb i32) (local $po i32) (local $s v128)
    (local.set $pa (local.get $a))
    (local.set $pb (local.get $b))
    (local.set $po (local.get $out))
    (local.set $s (v128.load32_splat (local.get $b)))
    (local.set $r (i32.const 0))
    (block $done_r
      (loop $for_r
        (br_if $done_r (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $j (i32.const 0))
        (block $done_j
          (loop $for_j
            (br_if $done_j (i32.ge_u (local.get $j) (local.get $rowBytes)))
            (v128.store align=4
              (i32.add (local.get $po) (local.get $j))
              (f32x4.div (v128.load align=4 (i32.add (local.get $pa) (local.get $j))) (local.get $s)))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $for_j)))
        (local.set $pa (i32.add (local.get $pa) (local.get $rowBytes)))
        (local.set $po (i32.add (local.get $po) (local.get $rowBytes)))
        (local.set $pb (i32.add (local.get $pb) (local.get $bRow)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $for_r))))

  ;; div_sv: out = a / b, a one float.
  (func $div_sv (export "div_sv")
    (param $a i32) (param $b i32) (param $out i32) (param $rows i32) (param $rowBytes i32) (param $bRow i32)
    (local $r i32) (local $j i32) (local $pa i32) (local $pb i32) (local $po i32) (local $s v128)
    (local.set $pa (local.get $a))
    (local.set $pb (local.get $b))
    (local.set $po (local.get $out))
    (local.set $s (v128.load32_splat (local.get $a)))
    (local.set $r (i32.const 0))
    (block $done_r
      (loop $for_r
        (br_if $done_r (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $j (i32.const 0))
        (block $done_j
          (loop $for_j
            (br_if $done_j (i32.ge_u (local.get $j) (local.get $rowBytes)))
            (v128.store align=4
              (i32.add (local.get $po) (local.get $j))
              (f32x4.div (local.get $s) (v128.load align=4 (i32.add (local.get $pb) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $for_j)))
        (local.set $pa (i32.add (local.get $pa) (local.get $rowBytes)))
        (local.set $po (i32.add (local.get $po) (local.get $rowBytes)))
        (local.set $pb (i32.add (local.get $pb) (local.get $bRow)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $for_r))))

  ;; relu(x, out, bytes): f32x4.max(x, 0), like the cpu kernel's Math.max(0, x) (+0 for -0, NaN kept).
  (func $relu (export "relu")
    (param $x i32) (param $out i32) (param $bytes i32)
    (local $j i32) (local $v v128)
    (local.set $j (i32.const 0))
    (block $done_j
      (loop $for_j
        (br_if $done_j (i32.ge_u (local.get $j) (local.get $bytes)))
        (local.set $v (v128.load align=4 (i32.add (local.get $x) (local.get $j))))
        (v128.store align=4
          (i32.add (local.get $out) (local.get $j))
          (f32x4.max (local.get $v) (v128.const f32x4 0 0 0 0)))
        (local.set $j (i32.add (local.get $j) (i32.const 16)))
        (br $for_j))))

  ;; step(x, out, bytes): x > 0 ? 1 : 0, NaN stays NaN (x != x selects x).
  (func $step (export "step")
    (param $x i32) (param $out i32) (param $bytes i32)
    (local $j i32) (local $v v128)
    (local.set $j (i32.const 0))
    (block $done_j
      (loop $for_j
        (br_if $done_j (i32.ge_u (local.get $j) (local.get $bytes)))
        (local.set $v (v128.load align=4 (i32.add (local.get $x) (local.get $j))))
        (v128.store align=4
          (i32.add (local.get $out) (local.get $j))
          (v128.bitselect
            (local.get $v)
            (v128.and
              (f32x4.gt (local.get $v) (v128.const f32x4 0 0 0 0))
              (v128.const f32x4 1 1 1 1))
            (f32x4.ne (local.get $v) (local.get $v))))
        (local.set $j (i32.add (local.get $j) (i32.const 16)))
        (br $for_j))))

  ;; square(x, out, bytes): x * x.
  (func $square (export "square")
    (param $x i32) (param $out i32) (param $bytes i32)
    (local $j i32) (local $v v128)
    (local.set $j (i32.const 0))
    (block $done_j
      (loop $for_j
        (br_if $done_j (i32.ge_u (local.get $j) (local.get $bytes)))
        (local.set $v (v128.load align=4 (i32.add (local.get $x) (local.get $j))))
        (v128.store align=4 (i32.add (local.get $out) (local.get $j)) (f32x4.mul (local.get $v) (local.get $v)))
        (local.set $j (i32.add (local.get $j) (i32.const 16)))
        (br $for_j))))

  ;; sqrt(x, out, bytes): f32x4.sqrt.
  (func $sqrt (export "sqrt")
    (param $x i32) (param $out i32) (param $bytes i32)
    (local $j i32) (local $v v128)
    (local.set $j (i32.const 0))
    (block $done_j
      (loop $for_j
        (br_if $done_j (i32.ge_u (local.get $j) (local.get $bytes)))
        (local.set $v (v128.load align=4 (i32.add (local.get $x) (local.get $j))))
        (v128.store align=4 (i32.add (local.get $out) (local.get $j)) (f32x4.sqrt (local.get $v)))
        (local.set $j (i32.add (local.get $j) (i32.const 16)))
        (br $for_j)))))
