;; Matrix products for convolutions and dense layers on the wasm backend (called from wasm-conv.ts and
;; wasm-matmul.ts through wasm-pool.ts, which runs each on one of two threads over the backend's memory).
;; XNNPACK's wasm convolutions reach ~13 GFLOP/s per thread here and its filter gradient far less; these
;; 4x8 register tiles reach ~36 GFLOP/s per thread with relaxed-SIMD fused multiply-add (measured in
;; isolation). Larger tiles spill V8's registers (6x8 measured ~16).
;;
;; Built by scripts/build-kernels.ts into four binaries: with f32x4.relaxed_madd as written (for a V8 that
;; takes relaxed SIMD) and with each `(f32x4.relaxed_madd a b c)` rewritten to `(f32x4.add (f32x4.mul a b) c)`;
;; each with the memory import shared (threaded backend) and not (single-threaded backend).
;; Addresses and sizes are in bytes; loops count up from 0 and stop at the bound (i32.ge_u).
(module
  (import "env" "mem" (memory 1 65536 shared))

  ;; gemm4: C = init + A B for m rows (m a multiple of 4) and n columns (a multiple of 8), one 4x8 tile of
  ;; C in 8 registers at a time. A(i,k) is at a + i0*aRow + k*aK + r*4 for row i = i0 + r of a tile: the tile's
  ;; 4 values of one k side by side (A transposed as it is, or packed by im2col4 / im2colT / im2colS).
  ;; B(k,j) is at b + (j/8)*bPanel + k*bRow + (j%8)*4, C(i,j) at c + i*cRow + j*4.
  ;; init: 0 (mode 0), C itself (mode 1, accumulate) or bias[j] (mode 2); relu != 0 clamps C at 0.
  ;; One A pointer ($pa) keeps the k loop in registers.
  (func $gemm4 (export "gemm4")
    (param $a i32) (param $b i32) (param $c i32) (param $m i32) (param $n i32) (param $kn i32) (param $aRow i32)
    (param $aK i32) (param $bRow i32) (param $bPanel i32) (param $cRow i32) (param $mode i32) (param $bias i32)
    (param $relu i32)
    (local $i0 i32) (local $j0 i32) (local $k i32) (local $pb i32) (local $pbBase i32) (local $pc i32)
    (local $pa i32) (local $acc0a v128) (local $acc0b v128) (local $acc1a v128) (local $acc1b v128)
    (local $acc2a v128) (local $acc2b v128) (local $acc3a v128) (local $acc3b v128) (local $b0 v128)
    (local $b1 v128) (local $s v128)
    (local.set $i0 (i32.const 0))
    (block $done_i0
      (loop $for_i0
        (br_if $done_i0 (i32.ge_u (local.get $i0) (local.get $m)))
        (local.set $pbBase (local.get $b))
        (local.set $j0 (i32.const 0))
        (block $done_j0
          (loop $for_j0
            (br_if $done_j0 (i32.ge_u (local.get $j0) (local.get $n)))
            (local.set $pc
              (i32.add
                (i32.add (local.get $c) (i32.mul (local.get $i0) (local.get $cRow)))
                (i32.mul (local.get $j0) (i32.const 4))))
            (local.set $pa (i32.add (local.get $a) (i32.mul (local.get $i0) (local.get $aRow))))
            (local.set $pb (local.get $pbBase))
            (local.set $acc0a (v128.const f32x4 0 0 0 0))
            (local.set $acc0b (v128.const f32x4 0 0 0 0))
            (local.set $acc1a (v128.const f32x4 0 0 0 0))
            (local.set $acc1b (v128.const f32x4 0 0 0 0))
            (local.set $acc2a (v128.const f32x4 0 0 0 0))
            (local.set $acc2b (v128.const f32x4 0 0 0 0))
            (local.set $acc3a (v128.const f32x4 0 0 0 0))
            (local.set $acc3b (v128.const f32x4 0 0 0 0))
            (if (i32.eq (local.get $mode) (i32.const 1))
              (then
                (local.set $acc0a
                  (v128.load align=4 (i32.add (local.get $pc) (i32.mul (i32.const 0) (local.get $cRow)))))
                (local.set $acc0b
                  (v128.load offset=16 align=4 (i32.add (local.get $pc) (i32.mul (i32.const 0) (local.get $cRow)))))
                (local.set $acc1a
                  (v128.load align=4 (i32.add (local.get $pc) (i32.mul (i32.const 1) (local.get $cRow)))))
                (local.set $acc1b
                  (v128.load offset=16 align=4 (i32.add (local.get $pc) (i32.mul (i32.const 1) (local.get $cRow)))))
                (local.set $acc2a
                  (v128.load align=4 (i32.add (local.get $pc) (i32.mul (i32.const 2) (local.get $cRow)))))
                (local.set $acc2b
                  (v128.load offset=16 align=4 (i32.add (local.get $pc) (i32.mul (i32.const 2) (local.get $cRow)))))
                (local.set $acc3a
                  (v128.load align=4 (i32.add (local.get $pc) (i32.mul (i32.const 3) (local.get $cRow)))))
                (local.set $acc3b
                  (v128.load offset=16 align=4 (i32.add (local.get $pc) (i32.mul (i32.const 3) (local.get $cRow)))))))
            (if (i32.eq (local.get $mode) (i32.const 2))
              (then
                (local.set $acc0a
                  (v128.load align=4 (i32.add (local.get $bias) (i32.mul (local.get $j0) (i32.const 4)))))
                (local.set $acc0b
                  (v128.load offset=16 align=4 (i32.add (local.get $bias) (i32.mul (local.get $j0) (i32.const 4)))))
                (local.set $acc1a
                  (v128.load align=4 (i32.add (local.get $bias) (i32.mul (local.get $j0) (i32.const 4)))))
                (local.set $acc1b
                  (v128.load offset=16 align=4 (i32.add (local.get $bias) (i32.mul (local.get $j0) (i32.const 4)))))
                (local.set $acc2a
                  (v128.load align=4 (i32.add (local.get $bias) (i32.mul (local.get $j0) (i32.const 4)))))
                (local.set $acc2b
                  (v128.load offset=16 align=4 (i32.add (local.get $bias) (i32.mul (local.get $j0) (i32.const 4)))))
                (local.set $acc3a
                  (v128.load align=4 (i32.add (local.get $bias) (i32.mul (local.get $j0) (i32.const 4)))))
                (local.set $acc3b
                  (v128.load offset=16 align=4 (i32.add (local.get $bias) (i32.mul (local.get $j0) (i32.const 4)))))))
            (local.set $k (i32.const 0))
            (block $done_k
              (loop $for_k
                (br_if $done_k (i32.ge_u (local.get $k) (local.get $kn)))
                ;; one k: B's 8 columns in b0, b1; each row's A value splatted into s, then acc += s * b
                (local.set $b0 (v128.load align=4 (local.get $pb)))
                (local.set $b1 (v128.load offset=16 align=4 (local.get $pb)))
                (local.set $s (v128.load32_splat (local.get $pa)))
                (local.set $acc0a (f32x4.relaxed_madd (local.get $s) (local.get $b0) (local.get $acc0a)))
                (local.set $acc0b (f32x4.relaxed_madd (local.get $s) (local.get $b1) (local.get $acc0b)))
                (local.set $s (v128.load32_splat offset=4 (local.get $pa)))
                (local.set $acc1a (f32x4.relaxed_madd (local.get $s) (local.get $b0) (local.get $acc1a)))
                (local.set $acc1b (f32x4.relaxed_madd (local.get $s) (local.get $b1) (local.get $acc1b)))
                (local.set $s (v128.load32_splat offset=8 (local.get $pa)))
                (local.set $acc2a (f32x4.relaxed_madd (local.get $s) (local.get $b0) (local.get $acc2a)))
                (local.set $acc2b (f32x4.relaxed_madd (local.get $s) (local.get $b1) (local.get $acc2b)))
                (local.set $s (v128.load32_splat offset=12 (local.get $pa)))
                (local.set $acc3a (f32x4.relaxed_madd (local.get $s) (local.get $b0) (local.get $acc3a)))
                (local.set $acc3b (f32x4.relaxed_madd (local.get $s) (local.get $b1) (local.get $acc3b)))
                (local.set $pa (i32.add (local.get $pa) (local.get $aK)))
                (local.set $pb (i32.add (local.get $pb) (local.get $bRow)))
                (local.set $k (i32.add (local.get $k) (i32.const 1)))
                (br $for_k)))
            (if (local.get $relu)
              (then
                (local.set $acc0a
                  (f32x4.max (local.get $acc0a) (v128.const f32x4 0 0 0 0)))
                (local.set $acc0b
                  (f32x4.max (local.get $acc0b) (v128.const f32x4 0 0 0 0)))
                (local.set $acc1a
                  (f32x4.max (local.get $acc1a) (v128.const f32x4 0 0 0 0)))
                (local.set $acc1b
                  (f32x4.max (local.get $acc1b) (v128.const f32x4 0 0 0 0)))
                (local.set $acc2a
                  (f32x4.max (local.get $acc2a) (v128.const f32x4 0 0 0 0)))
                (local.set $acc2b
                  (f32x4.max (local.get $acc2b) (v128.const f32x4 0 0 0 0)))
                (local.set $acc3a
                  (f32x4.max (local.get $acc3a) (v128.const f32x4 0 0 0 0)))
                (local.set $acc3b
                  (f32x4.max (local.get $acc3b) (v128.const f32x4 0 0 0 0)))))
            (v128.store align=4
              (i32.add (local.get $pc) (i32.mul (i32.const 0) (local.get $cRow)))
              (local.get $acc0a))
            (v128.store offset=16 align=4
              (i32.add (local.get $pc) (i32.mul (i32.const 0) (local.get $cRow)))
              (local.get $acc0b))
            (v128.store align=4
              (i32.add (local.get $pc) (i32.mul (i32.const 1) (local.get $cRow)))
              (local.get $acc1a))
            (v128.store offset=16 align=4
              (i32.add (local.get $pc) (i32.mul (i32.const 1) (local.get $cRow)))
              (local.get $acc1b))
            (v128.store align=4
              (i32.add (local.get $pc) (i32.mul (i32.const 2) (local.get $cRow)))
              (local.get $acc2a))
            (v128.store offset=16 align=4
              (i32.add (local.get $pc) (i32.mul (i32.const 2) (local.get $cRow)))
              (local.get $acc2b))
            (v128.store align=4
              (i32.add (local.get $pc) (i32.mul (i32.const 3) (local.get $cRow)))
              (local.get $acc3a))
            (v128.store offset=16 align=4
              (i32.add (local.get $pc) (i32.mul (i32.const 3) (local.get $cRow)))
              (local.get $acc3b))
            (local.set $pbBase (i32.add (local.get $pbBase) (local.get $bPanel)))
            (local.set $j0 (i32.add (local.get $j0) (i32.const 8)))
            (br $for_j0)))
        (local.set $i0 (i32.add (local.get $i0) (i32.const 4)))
        (br $for_i0))))

  ;; gemm1: gemm4 for a last partial tile of 1 row (same parameters).
  (func $gemm1 (export "gemm1")
    (param $a i32) (param $b i32) (param $c i32) (param $m i32) (param $n i32) (param $kn i32) (param $aRow i32)
    (param $aK i32) (param $bRow i32) (param $bPanel i32) (param $cRow i32) (param $mode i32) (param $bias i32)
    (param $relu i32)
    (local $i0 i32) (local $j0 i32) (local $k i32) (local $pb i32) (local $pbBase i32) (local $pc i32)
    (local $pa i32) (local $acc0a v128) (local $acc0b v128) (local $b0 v128) (local $b1 v128) (local $s v128)
    (local.set $i0 (i32.const 0))
    (block $done_i0
      (loop $for_i0
        (br_if $done_i0 (i32.ge_u (local.get $i0) (local.get $m)))
        (local.set $pbBase (local.get $b))
        (local.set $j0 (i32.const 0))
        (block $done_j0
          (loop $for_j0
            (br_if $done_j0 (i32.ge_u (local.get $j0) (local.get $n)))
            (local.set $pc
              (i32.add
                (i32.add (local.get $c) (i32.mul (local.get $i0) (local.get $cRow)))
                (i32.mul (local.get $j0) (i32.const 4))))
            (local.set $pa (i32.add (local.get $a) (i32.mul (local.get $i0) (local.get $aRow))))
            (local.set $pb (local.get $pbBase))
            (local.set $acc0a (v128.const f32x4 0 0 0 0))
            (local.set $acc0b (v128.const f32x4 0 0 0 0))
            (if (i32.eq (local.get $mode) (i32.const 1))
              (then
                (local.set $acc0a
                  (v128.load align=4 (i32.add (local.get $pc) (i32.mul (i32.const 0) (local.get $cRow)))))
                (local.set $acc0b
                  (v128.load offset=16 align=4 (i32.add (local.get $pc) (i32.mul (i32.const 0) (local.get $cRow)))))))
            (if (i32.eq (local.get $mode) (i32.const 2))
              (then
                (local.set $acc0a
                  (v128.load align=4 (i32.add (local.get $bias) (i32.mul (local.get $j0) (i32.const 4)))))
                (local.set $acc0b
                  (v128.load offset=16 align=4 (i32.add (local.get $bias) (i32.mul (local.get $j0) (i32.const 4)))))))
            (local.set $k (i32.const 0))
            (block $done_k
              (loop $for_k
                (br_if $done_k (i32.ge_u (local.get $k) (local.get $kn)))
                ;; one k: B's 8 columns in b0, b1; each row's A value splatted into s, then acc += s * b
                (local.set $b0 (v128.load align=4 (local.get $pb)))
                (local.set $b1 (v128.load offset=16 align=4 (local.get $pb)))
                (local.set $s (v128.load32_splat (local.get $pa)))
                (local.set $acc0a (f32x4.relaxed_madd (local.get $s) (local.get $b0) (local.get $acc0a)))
                (local.set $acc0b (f32x4.relaxed_madd (local.get $s) (local.get $b1) (local.get $acc0b)))
                (local.set $pa (i32.add (local.get $pa) (local.get $aK)))
                (local.set $pb (i32.add (local.get $pb) (local.get $bRow)))
                (local.set $k (i32.add (local.get $k) (i32.const 1)))
                (br $for_k)))
            (if (local.get $relu)
              (then
                (local.set $acc0a
                  (f32x4.max (local.get $acc0a) (v128.const f32x4 0 0 0 0)))
                (local.set $acc0b
                  (f32x4.max (local.get $acc0b) (v128.const f32x4 0 0 0 0)))))
            (v128.store align=4
              (i32.add (local.get $pc) (i32.mul (i32.const 0) (local.get $cRow)))
              (local.get $acc0a))
            (v128.store offset=16 align=4
              (i32.add (local.get $pc) (i32.mul (i32.const 0) (local.get $cRow)))
              (local.get $acc0b))
            (local.set $pbBase (i32.add (local.get $pbBase) (local.get $bPanel)))
            (local.set $j0 (i32.add (local.get $j0) (i32.const 8)))
            (br $for_j0)))
        (local.set $i0 (i32.add (local.get $i0) (i32.const 1)))
        (br $for_i0))))

  ;; gemm2: gemm4 for a last partial tile of 2 rows (same parameters).
  (func $gemm2 (export "gemm2")
    (param $a i32) (param $b i32) (param $c i32) (param $m i32) (param $n i32) (param $kn i32) (param $aRow i32)
    (param $aK i32) (param $bRow i32) (param $bPanel i32) (param $cRow i32) (param $mode i32) (param $bias i32)
    (param $relu i32)
    (local $i0 i32) (local $j0 i32) (local $k i32) (local $pb i32) (local $pbBase i32) (local $pc i32)
    (local $pa i32) (local $acc0a v128) (local $acc0b v128) (local $acc1a v128) (local $acc1b v128)
    (local $b0 v128) (local $b1 v128) (local $s v128)
    (local.set $i0 (i32.const 0))
    (block $done_i0
      (loop $for_i0
        (br_if $done_i0 (i32.ge_u (local.get $i0) (local.get $m)))
        (local.set $pbBase (local.get $b))
        (local.set $j0 (i32.const 0))
        (block $done_j0
          (loop $for_j0
            (br_if $done_j0 (i32.ge_u (local.get $j0) (local.get $n)))
            (local.set $pc
              (i32.add
                (i32.add (local.get $c) (i32.mul (local.get $i0) (local.get $cRow)))
                (i32.mul (local.get $j0) (i32.const 4))))
            (local.set $pa (i32.add (local.get $a) (i32.mul (local.get $i0) (local.get $aRow))))
            (local.set $pb (local.get $pbBase))
            (local.set $acc0a (v128.const f32x4 0 0 0 0))
            (local.set $acc0b (v128.const f32x4 0 0 0 0))
            (local.set $acc1a (v128.const f32x4 0 0 0 0))
            (local.set $acc1b (v128.const f32x4 0 0 0 0))
            (if (i32.eq (local.get $mode) (i32.const 1))
              (then
                (local.set $acc0a
                  (v128.load align=4 (i32.add (local.get $pc) (i32.mul (i32.const 0) (local.get $cRow)))))
                (local.set $acc0b
                  (v128.load offset=16 align=4 (i32.add (local.get $pc) (i32.mul (i32.const 0) (local.get $cRow)))))
                (local.set $acc1a
                  (v128.load align=4 (i32.add (local.get $pc) (i32.mul (i32.const 1) (local.get $cRow)))))
                (local.set $acc1b
                  (v128.load offset=16 align=4 (i32.add (local.get $pc) (i32.mul (i32.const 1) (local.get $cRow)))))))
            (if (i32.eq (local.get $mode) (i32.const 2))
              (then
                (local.set $acc0a
                  (v128.load align=4 (i32.add (local.get $bias) (i32.mul (local.get $j0) (i32.const 4)))))
                (local.set $acc0b
                  (v128.load offset=16 align=4 (i32.add (local.get $bias) (i32.mul (local.get $j0) (i32.const 4)))))
                (local.set $acc1a
                  (v128.load align=4 (i32.add (local.get $bias) (i32.mul (local.get $j0) (i32.const 4)))))
                (local.set $acc1b
                  (v128.load offset=16 align=4 (i32.add (local.get $bias) (i32.mul (local.get $j0) (i32.const 4)))))))
            (local.set $k (i32.const 0))
            (block $done_k
              (loop $for_k
                (br_if $done_k (i32.ge_u (local.get $k) (local.get $kn)))
                ;; one k: B's 8 columns in b0, b1; each row's A value splatted into s, then acc += s * b
                (local.set $b0 (v128.load align=4 (local.get $pb)))
                (local.set $b1 (v128.load offset=16 align=4 (local.get $pb)))
                (local.set $s (v128.load32_splat (local.get $pa)))
                (local.set $acc0a (f32x4.relaxed_madd (local.get $s) (local.get $b0) (local.get $acc0a)))
                (local.set $acc0b (f32x4.relaxed_madd (local.get $s) (local.get $b1) (local.get $acc0b)))
                (local.set $s (v128.load32_splat offset=4 (local.get $pa)))
                (local.set $acc1a (f32x4.relaxed_madd (local.get $s) (local.get $b0) (local.get $acc1a)))
                (local.set $acc1b (f32x4.relaxed_madd (local.get $s) (local.get $b1) (local.get $acc1b)))
                (local.set $pa (i32.add (local.get $pa) (local.get $aK)))
                (local.set $pb (i32.add (local.get $pb) (local.get $bRow)))
                (local.set $k (i32.add (local.get $k) (i32.const 1)))
                (br $for_k)))
            (if (local.get $relu)
              (then
                (local.set $acc0a
                  (f32x4.max (local.get $acc0a) (v128.const f32x4 0 0 0 0)))
                (local.set $acc0b
                  (f32x4.max (local.get $acc0b) (v128.const f32x4 0 0 0 0)))
                (local.set $acc1a
                  (f32x4.max (local.get $acc1a) (v128.const f32x4 0 0 0 0)))
                (local.set $acc1b
                  (f32x4.max (local.get $acc1b) (v128.const f32x4 0 0 0 0)))))
            (v128.store align=4
              (i32.add (local.get $pc) (i32.mul (i32.const 0) (local.get $cRow)))
              (local.get $acc0a))
            (v128.store offset=16 align=4
              (i32.add (local.get $pc) (i32.mul (i32.const 0) (local.get $cRow)))
              (local.get $acc0b))
            (v128.store align=4
              (i32.add (local.get $pc) (i32.mul (i32.const 1) (local.get $cRow)))
              (local.get $acc1a))
            (v128.store offset=16 align=4
              (i32.add (local.get $pc) (i32.mul (i32.const 1) (local.get $cRow)))
              (local.get $acc1b))
            (local.set $pbBase (i32.add (local.get $pbBase) (local.get $bPanel)))
            (local.set $j0 (i32.add (local.get $j0) (i32.const 8)))
            (br $for_j0)))
        (local.set $i0 (i32.add (local.get $i0) (i32.const 2)))
        (br $for_i0))))

  ;; gemm3: gemm4 for a last partial tile of 3 rows (same parameters).
  (func $gemm3 (export "gemm3")
    (param $a i32) (param $b i32) (param $c i32) (param $m i32) (param $n i32) (param $kn i32) (param $aRow i32)
    (param $aK i32) (param $bRow i32) (param $bPanel i32) (param $cRow i32) (param $mode i32) (param $bias i32)
    (param $relu i32)
    (local $i0 i32) (local $j0 i32) (local $k i32) (local $pb i32) (local $pbBase i32) (local $pc i32)
    (local $pa i32) (local $acc0a v128) (local $acc0b v128) (local $acc1a v128) (local $acc1b v128)
    (local $acc2a v128) (local $acc2b v128) (local $b0 v128) (local $b1 v128) (local $s v128)
    (local.set $i0 (i32.const 0))
    (block $done_i0
      (loop $for_i0
        (br_if $done_i0 (i32.ge_u (local.get $i0) (local.get $m)))
        (local.set $pbBase (local.get $b))
        (local.set $j0 (i32.const 0))
        (block $done_j0
          (loop $for_j0
            (br_if $done_j0 (i32.ge_u (local.get $j0) (local.get $n)))
            (local.set $pc
              (i32.add
                (i32.add (local.get $c) (i32.mul (local.get $i0) (local.get $cRow)))
                (i32.mul (local.get $j0) (i32.const 4))))
            (local.set $pa (i32.add (local.get $a) (i32.mul (local.get $i0) (local.get $aRow))))
            (local.set $pb (local.get $pbBase))
            (local.set $acc0a (v128.const f32x4 0 0 0 0))
            (local.set $acc0b (v128.const f32x4 0 0 0 0))
            (local.set $acc1a (v128.const f32x4 0 0 0 0))
            (local.set $acc1b (v128.const f32x4 0 0 0 0))
            (local.set $acc2a (v128.const f32x4 0 0 0 0))
            (local.set $acc2b (v128.const f32x4 0 0 0 0))
            (if (i32.eq (local.get $mode) (i32.const 1))
              (then
                (local.set $acc0a
                  (v128.load align=4 (i32.add (local.get $pc) (i32.mul (i32.const 0) (local.get $cRow)))))
                (local.set $acc0b
                  (v128.load offset=16 align=4 (i32.add (local.get $pc) (i32.mul (i32.const 0) (local.get $cRow)))))
                (local.set $acc1a
                  (v128.load align=4 (i32.add (local.get $pc) (i32.mul (i32.const 1) (local.get $cRow)))))
                (local.set $acc1b
                  (v128.load offset=16 align=4 (i32.add (local.get $pc) (i32.mul (i32.const 1) (local.get $cRow)))))
                (local.set $acc2a
                  (v128.load align=4 (i32.add (local.get $pc) (i32.mul (i32.const 2) (local.get $cRow)))))
                (local.set $acc2b
                  (v128.load offset=16 align=4 (i32.add (local.get $pc) (i32.mul (i32.const 2) (local.get $cRow)))))))
            (if (i32.eq (local.get $mode) (i32.const 2))
              (then
                (local.set $acc0a
                  (v128.load align=4 (i32.add (local.get $bias) (i32.mul (local.get $j0) (i32.const 4)))))
                (local.set $acc0b
                  (v128.load offset=16 align=4 (i32.add (local.get $bias) (i32.mul (local.get $j0) (i32.const 4)))))
                (local.set $acc1a
                  (v128.load align=4 (i32.add (local.get $bias) (i32.mul (local.get $j0) (i32.const 4)))))
                (local.set $acc1b
                  (v128.load offset=16 align=4 (i32.add (local.get $bias) (i32.mul (local.get $j0) (i32.const 4)))))
                (local.set $acc2a
                  (v128.load align=4 (i32.add (local.get $bias) (i32.mul (local.get $j0) (i32.const 4)))))
                (local.set $acc2b
                  (v128.load offset=16 align=4 (i32.add (local.get $bias) (i32.mul (local.get $j0) (i32.const 4)))))))
            (local.set $k (i32.const 0))
            (block $done_k
              (loop $for_k
                (br_if $done_k (i32.ge_u (local.get $k) (local.get $kn)))
                ;; one k: B's 8 columns in b0, b1; each row's A value splatted into s, then acc += s * b
                (local.set $b0 (v128.load align=4 (local.get $pb)))
                (local.set $b1 (v128.load offset=16 align=4 (local.get $pb)))
                (local.set $s (v128.load32_splat (local.get $pa)))
                (local.set $acc0a (f32x4.relaxed_madd (local.get $s) (local.get $b0) (local.get $acc0a)))
                (local.set $acc0b (f32x4.relaxed_madd (local.get $s) (local.get $b1) (local.get $acc0b)))
                (local.set $s (v128.load32_splat offset=4 (local.get $pa)))
                (local.set $acc1a (f32x4.relaxed_madd (local.get $s) (local.get $b0) (local.get $acc1a)))
                (local.set $acc1b (f32x4.relaxed_madd (local.get $s) (local.get $b1) (local.get $acc1b)))
                (local.set $s (v128.load32_splat offset=8 (local.get $pa)))
                (local.set $acc2a (f32x4.relaxed_madd (local.get $s) (local.get $b0) (local.get $acc2a)))
                (local.set $acc2b (f32x4.relaxed_madd (local.get $s) (local.get $b1) (local.get $acc2b)))
                (local.set $pa (i32.add (local.get $pa) (local.get $aK)))
                (local.set $pb (i32.add (local.get $pb) (local.get $bRow)))
                (local.set $k (i32.add (local.get $k) (i32.const 1)))
                (br $for_k)))
            (if (local.get $relu)
              (then
                (local.set $acc0a
                  (f32x4.max (local.get $acc0a) (v128.const f32x4 0 0 0 0)))
                (local.set $acc0b
                  (f32x4.max (local.get $acc0b) (v128.const f32x4 0 0 0 0)))
                (local.set $acc1a
                  (f32x4.max (local.get $acc1a) (v128.const f32x4 0 0 0 0)))
                (local.set $acc1b
                  (f32x4.max (local.get $acc1b) (v128.const f32x4 0 0 0 0)))
                (local.set $acc2a
                  (f32x4.max (local.get $acc2a) (v128.const f32x4 0 0 0 0)))
                (local.set $acc2b
                  (f32x4.max (local.get $acc2b) (v128.const f32x4 0 0 0 0)))))
            (v128.store align=4
              (i32.add (local.get $pc) (i32.mul (i32.const 0) (local.get $cRow)))
              (local.get $acc0a))
            (v128.store offset=16 align=4
              (i32.add (local.get $pc) (i32.mul (i32.const 0) (local.get $cRow)))
              (local.get $acc0b))
            (v128.store align=4
              (i32.add (local.get $pc) (i32.mul (i32.const 1) (local.get $cRow)))
              (local.get $acc1a))
            (v128.store offset=16 align=4
              (i32.add (local.get $pc) (i32.mul (i32.const 1) (local.get $cRow)))
              (local.get $acc1b))
            (v128.store align=4
              (i32.add (local.get $pc) (i32.mul (i32.const 2) (local.get $cRow)))
              (local.get $acc2a))
            (v128.store offset=16 align=4
              (i32.add (local.get $pc) (i32.mul (i32.const 2) (local.get $cRow)))
              (local.get $acc2b))
            (local.set $pbBase (i32.add (local.get $pbBase) (local.get $bPanel)))
            (local.set $j0 (i32.add (local.get $j0) (i32.const 8)))
            (br $for_j0)))
        (local.set $i0 (i32.add (local.get $i0) (i32.const 3)))
        (br $for_i0))))

  ;; panel8: B (kn rows, srcRow bytes apart) into gemm's 8-column panels, kn x 32 bytes each, one after
  ;; another at dst; `panels` of them.
  (func $panel8 (export "panel8")
    (param $src i32) (param $dst i32) (param $kn i32) (param $panels i32) (param $srcRow i32)
    (local $p i32) (local $k i32) (local $from i32)
    (local.set $p (i32.const 0))
    (block $done_p
      (loop $for_p
        (br_if $done_p (i32.ge_u (local.get $p) (local.get $panels)))
        (local.set $from (i32.add (local.get $src) (i32.mul (local.get $p) (i32.const 32))))
        (local.set $k (i32.const 0))
        (block $done_k
          (loop $for_k
            (br_if $done_k (i32.ge_u (local.get $k) (local.get $kn)))
            (v128.store align=4 (local.get $dst) (v128.load align=4 (local.get $from)))
            (v128.store offset=16 align=4 (local.get $dst) (v128.load offset=16 align=4 (local.get $from)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
            (local.set $from (i32.add (local.get $from) (local.get $srcRow)))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $for_k)))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $for_p)))))
