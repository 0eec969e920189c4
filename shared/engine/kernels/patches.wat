;; The im2col packing that feeds gemm.wat's tiles, its reverse (col2im) for input gradients, and a
;; filter-gradient loop for layers too small for the tiles. Called from wasm-conv.ts and wasm-matmul.ts
;; through wasm-pool.ts, on two threads over the backend's memory.
;;
;; The patch kernels share their first eleven parameters: $nb images of the (already padded) NHWC input
;; at $x, $imgBytes apart; output pixel (r, q) of an image reads $kh segments of kw*ci floats ($segBytes
;; long), $rowBytes apart, from x + r*rowStep + q*colStep; the output has $oh x $ow pixels per image.
;; Built by scripts/build-kernels.ts with the memory import shared and not.
(module
  (import "env" "mem" (memory 1 65536 shared))

  ;; im2col4: im2col of $count pixels, written at $dst as A panels for gemm: per 4 pixels, per tap, the 4
  ;; pixels' values side by side (4x4 transposes of v128 loads). A last partial panel repeats the last pixel.
  ;; Needs segBytes a multiple of 16.
  (func $im2col4 (export "im2col4")
    (param $x i32) (param $dst i32) (param $nb i32) (param $oh i32) (param $ow i32) (param $kh i32)
    (param $rowBytes i32) (param $segBytes i32) (param $colStep i32) (param $rowStep i32) (param $imgBytes i32)
    (param $count i32)
    (local $bi i32) (local $r i32) (local $q i32) (local $p i32) (local $t i32) (local $e i32) (local $out i32)
    (local $base i32) (local $src0 i32) (local $src1 i32) (local $src2 i32) (local $src3 i32) (local $v0 v128)
    (local $v1 v128) (local $v2 v128) (local $v3 v128) (local $w0 v128) (local $w1 v128) (local $w2 v128)
    (local $w3 v128)
    (local.set $out (local.get $dst))
    (local.set $p (i32.const 0))
    (block $done_p
      (loop $for_p
        (br_if $done_p (i32.ge_u (local.get $p) (local.get $count)))
        (local.set $src0
          (i32.add
            (i32.add
              (i32.add (local.get $x) (i32.mul (local.get $bi) (local.get $imgBytes)))
              (i32.mul (local.get $r) (local.get $rowStep)))
            (i32.mul (local.get $q) (local.get $colStep))))
        ;; the next pixel (q, r, bi carry), unless this is the last one: a partial panel repeats it
        (if (i32.lt_s (i32.add (local.get $p) (i32.const 1)) (local.get $count))
          (then
            (local.set $q (i32.add (local.get $q) (i32.const 1)))
            (if (i32.eq (local.get $q) (local.get $ow))
              (then
                (local.set $q (i32.const 0))
                (local.set $r (i32.add (local.get $r) (i32.const 1)))
                (if (i32.eq (local.get $r) (local.get $oh))
                  (then (local.set $r (i32.const 0)) (local.set $bi (i32.add (local.get $bi) (i32.const 1)))))))))
        (local.set $src1
          (i32.add
            (i32.add
              (i32.add (local.get $x) (i32.mul (local.get $bi) (local.get $imgBytes)))
              (i32.mul (local.get $r) (local.get $rowStep)))
            (i32.mul (local.get $q) (local.get $colStep))))
        (if (i32.lt_s (i32.add (local.get $p) (i32.const 2)) (local.get $count))
          (then
            (local.set $q (i32.add (local.get $q) (i32.const 1)))
            (if (i32.eq (local.get $q) (local.get $ow))
              (then
                (local.set $q (i32.const 0))
                (local.set $r (i32.add (local.get $r) (i32.const 1)))
                (if (i32.eq (local.get $r) (local.get $oh))
                  (then (local.set $r (i32.const 0)) (local.set $bi (i32.add (local.get $bi) (i32.const 1)))))))))
        (local.set $src2
          (i32.add
            (i32.add
              (i32.add (local.get $x) (i32.mul (local.get $bi) (local.get $imgBytes)))
              (i32.mul (local.get $r) (local.get $rowStep)))
            (i32.mul (local.get $q) (local.get $colStep))))
        (if (i32.lt_s (i32.add (local.get $p) (i32.const 3)) (local.get $count))
          (then
            (local.set $q (i32.add (local.get $q) (i32.const 1)))
            (if (i32.eq (local.get $q) (local.get $ow))
              (then
                (local.set $q (i32.const 0))
                (local.set $r (i32.add (local.get $r) (i32.const 1)))
                (if (i32.eq (local.get $r) (local.get $oh))
                  (then (local.set $r (i32.const 0)) (local.set $bi (i32.add (local.get $bi) (i32.const 1)))))))))
        (local.set $src3
          (i32.add
            (i32.add
              (i32.add (local.get $x) (i32.mul (local.get $bi) (local.get $imgBytes)))
              (i32.mul (local.get $r) (local.get $rowStep)))
            (i32.mul (local.get $q) (local.get $colStep))))
        (if (i32.lt_s (i32.add (local.get $p) (i32.const 4)) (local.get $count))
          (then
            (local.set $q (i32.add (local.get $q) (i32.const 1)))
            (if (i32.eq (local.get $q) (local.get $ow))
              (then
                (local.set $q (i32.const 0))
                (local.set $r (i32.add (local.get $r) (i32.const 1)))
                (if (i32.eq (local.get $r) (local.get $oh))
                  (then (local.set $r (i32.const 0)) (local.set $bi (i32.add (local.get $bi) (i32.const 1)))))))))
        (local.set $t (i32.const 0))
        (block $done_t
          (loop $for_t
            (br_if $done_t (i32.ge_u (local.get $t) (local.get $kh)))
            (local.set $base (i32.mul (local.get $t) (local.get $rowBytes)))
            (local.set $e (i32.const 0))
            (block $done_e
              (loop $for_e
                (br_if $done_e (i32.ge_u (local.get $e) (local.get $segBytes)))
                ;; 4 floats of each of the 4 pixels (rows v0..v3), transposed in two rounds of shuffles so
                ;; each store holds one float of all 4 pixels: w = interleaved pairs, then the columns.
                (local.set $v0
                  (v128.load align=4 (i32.add (i32.add (local.get $src0) (local.get $base)) (local.get $e))))
                (local.set $v1
                  (v128.load align=4 (i32.add (i32.add (local.get $src1) (local.get $base)) (local.get $e))))
                (local.set $v2
                  (v128.load align=4 (i32.add (i32.add (local.get $src2) (local.get $base)) (local.get $e))))
                (local.set $v3
                  (v128.load align=4 (i32.add (i32.add (local.get $src3) (local.get $base)) (local.get $e))))
                (local.set $w0
                  (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $v0) (local.get $v1)))
                (local.set $w1
                  (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $v0) (local.get $v1)))
                (local.set $w2
                  (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $v2) (local.get $v3)))
                (local.set $w3
                  (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $v2) (local.get $v3)))
                (v128.store align=4
                  (local.get $out)
                  (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $w0) (local.get $w2)))
                (v128.store offset=16 align=4
                  (local.get $out)
                  (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $w0) (local.get $w2)))
                (v128.store offset=32 align=4
                  (local.get $out)
                  (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $w1) (local.get $w3)))
                (v128.store offset=48 align=4
                  (local.get $out)
                  (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $w1) (local.get $w3)))
                (local.set $out (i32.add (local.get $out) (i32.const 64)))
                (local.set $e (i32.add (local.get $e) (i32.const 16)))
                (br $for_e)))
            (local.set $t (i32.add (local.get $t) (i32.const 1)))
            (br $for_t)))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $for_p))))

  ;; im2col1: im2col4 for one input channel at stride 1 (a first layer): 4 pixels side by side in one
  ;; output row read each tap as 4 neighbouring input floats, one v128 load; a panel that wraps to the next
  ;; row is gathered one float at a time.
  (func $im2col1 (export "im2col1")
    (param $x i32) (param $dst i32) (param $nb i32) (param $oh i32) (param $ow i32) (param $kh i32)
    (param $rowBytes i32) (param $segBytes i32) (param $colStep i32) (param $rowStep i32) (param $imgBytes i32)
    (param $count i32)
    (local $bi i32) (local $r i32) (local $q i32) (local $p i32) (local $t i32) (local $j i32) (local $out i32)
    (local $src i32) (local $i i32) (local $from i32)
    (local.set $out (local.get $dst))
    (local.set $p (i32.const 0))
    (block $done_p
      (loop $for_p
        (br_if $done_p (i32.ge_u (local.get $p) (local.get $count)))
        (if
          (i32.and
            (i32.le_s (i32.add (local.get $q) (i32.const 4)) (local.get $ow))
            (i32.le_s (i32.add (local.get $p) (i32.const 4)) (local.get $count)))
          (then
            (local.set $src
              (i32.add
                (i32.add
                  (i32.add (local.get $x) (i32.mul (local.get $bi) (local.get $imgBytes)))
                  (i32.mul (local.get $r) (local.get $rowStep)))
                (i32.mul (local.get $q) (local.get $colStep))))
            (local.set $t (i32.const 0))
            (block $done_t
              (loop $for_t
                (br_if $done_t (i32.ge_u (local.get $t) (local.get $kh)))
                (local.set $j (i32.const 0))
                (block $done_j
                  (loop $for_j
                    (br_if $done_j (i32.ge_u (local.get $j) (local.get $segBytes)))
                    (v128.store align=4
                      (i32.add
                        (local.get $out)
                        (i32.mul
                          (i32.add (i32.mul (local.get $t) (local.get $segBytes)) (local.get $j))
                          (i32.const 4)))
                      (v128.load align=4
                        (i32.add
                          (i32.add (local.get $src) (i32.mul (local.get $t) (local.get $rowBytes)))
                          (local.get $j))))
                    (local.set $j (i32.add (local.get $j) (i32.const 4)))
                    (br $for_j)))
                (local.set $t (i32.add (local.get $t) (i32.const 1)))
                (br $for_t)))
            (local.set $q (i32.add (local.get $q) (i32.const 1)))
            (if (i32.eq (local.get $q) (local.get $ow))
              (then
                (local.set $q (i32.const 0))
                (local.set $r (i32.add (local.get $r) (i32.const 1)))
                (if (i32.eq (local.get $r) (local.get $oh))
                  (then (local.set $r (i32.const 0)) (local.set $bi (i32.add (local.get $bi) (i32.const 1)))))))
            (local.set $q (i32.add (local.get $q) (i32.const 1)))
            (if (i32.eq (local.get $q) (local.get $ow))
              (then
                (local.set $q (i32.const 0))
                (local.set $r (i32.add (local.get $r) (i32.const 1)))
                (if (i32.eq (local.get $r) (local.get $oh))
                  (then (local.set $r (i32.const 0)) (local.set $bi (i32.add (local.get $bi) (i32.const 1)))))))
            (local.set $q (i32.add (local.get $q) (i32.const 1)))
            (if (i32.eq (local.get $q) (local.get $ow))
              (then
                (local.set $q (i32.const 0))
                (local.set $r (i32.add (local.get $r) (i32.const 1)))
                (if (i32.eq (local.get $r) (local.get $oh))
                  (then (local.set $r (i32.const 0)) (local.set $bi (i32.add (local.get $bi) (i32.const 1)))))))
            (local.set $q (i32.add (local.get $q) (i32.const 1)))
            (if (i32.eq (local.get $q) (local.get $ow))
              (then
                (local.set $q (i32.const 0))
                (local.set $r (i32.add (local.get $r) (i32.const 1)))
                (if (i32.eq (local.get $r) (local.get $oh))
                  (then (local.set $r (i32.const 0)) (local.set $bi (i32.add (local.get $bi) (i32.const 1))))))))
          (else
            (local.set $i (i32.const 0))
            (block $done_i
              (loop $for_i
                (br_if $done_i (i32.ge_u (local.get $i) (i32.const 4)))
                (local.set $from
                  (i32.add
                    (i32.add
                      (i32.add (local.get $x) (i32.mul (local.get $bi) (local.get $imgBytes)))
                      (i32.mul (local.get $r) (local.get $rowStep)))
                    (i32.mul (local.get $q) (local.get $colStep))))
                (local.set $t (i32.const 0))
                (block $done_t
                  (loop $for_t
                    (br_if $done_t (i32.ge_u (local.get $t) (local.get $kh)))
                    (local.set $j (i32.const 0))
                    (block $done_j
                      (loop $for_j
                        (br_if $done_j (i32.ge_u (local.get $j) (local.get $segBytes)))
                        (f32.store
                          (i32.add
                            (i32.add
                              (local.get $out)
                              (i32.mul
                                (i32.add (i32.mul (local.get $t) (local.get $segBytes)) (local.get $j))
                                (i32.const 4)))
                            (i32.mul (local.get $i) (i32.const 4)))
                          (f32.load
                            (i32.add
                              (i32.add (local.get $from) (i32.mul (local.get $t) (local.get $rowBytes)))
                              (local.get $j))))
                        (local.set $j (i32.add (local.get $j) (i32.const 4)))
                        (br $for_j)))
                    (local.set $t (i32.add (local.get $t) (i32.const 1)))
                    (br $for_t)))
                (if (i32.lt_s (i32.add (i32.add (local.get $p) (local.get $i)) (i32.const 1)) (local.get $count))
                  (then
                    (local.set $q (i32.add (local.get $q) (i32.const 1)))
                    (if (i32.eq (local.get $q) (local.get $ow))
                      (then
                        (local.set $q (i32.const 0))
                        (local.set $r (i32.add (local.get $r) (i32.const 1)))
                        (if (i32.eq (local.get $r) (local.get $oh))
                          (then
                            (local.set $r (i32.const 0))
                            (local.set $bi (i32.add (local.get $bi) (i32.const 1)))))))))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $for_i)))))
        (local.set $out
          (i32.add (local.get $out) (i32.mul (i32.mul (local.get $kh) (local.get $segBytes)) (i32.const 4))))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $for_p))))

  ;; im2colT: im2col transposed into A panels of 4 taps: tap group g of pixel k (counted from 0 over the
  ;; nb images) at dst + g*panelBytes + k*16.
  (func $im2colT (export "im2colT")
    (param $x i32) (param $dst i32) (param $nb i32) (param $oh i32) (param $ow i32) (param $kh i32)
    (param $rowBytes i32) (param $segBytes i32) (param $colStep i32) (param $rowStep i32) (param $imgBytes i32)
    (param $panelBytes i32)
    (local $bi i32) (local $r i32) (local $q i32) (local $t i32) (local $j i32) (local $src i32) (local $row i32)
    (local $pp i32)
    (local.set $row (local.get $dst))
    (local.set $bi (i32.const 0))
    (block $done_bi
      (loop $for_bi
        (br_if $done_bi (i32.ge_u (local.get $bi) (local.get $nb)))
        (local.set $r (i32.const 0))
        (block $done_r
          (loop $for_r
            (br_if $done_r (i32.ge_u (local.get $r) (local.get $oh)))
            (local.set $q (i32.const 0))
            (block $done_q
              (loop $for_q
                (br_if $done_q (i32.ge_u (local.get $q) (local.get $ow)))
                (local.set $src
                  (i32.add
                    (i32.add
                      (i32.add (local.get $x) (i32.mul (local.get $bi) (local.get $imgBytes)))
                      (i32.mul (local.get $r) (local.get $rowStep)))
                    (i32.mul (local.get $q) (local.get $colStep))))
                (local.set $pp (local.get $row))
                (local.set $t (i32.const 0))
                (block $done_t
                  (loop $for_t
                    (br_if $done_t (i32.ge_u (local.get $t) (local.get $kh)))
                    (local.set $j (i32.const 0))
                    (block $done_j
                      (loop $for_j
                        (br_if $done_j (i32.ge_u (local.get $j) (local.get $segBytes)))
                        (v128.store align=4
                          (local.get $pp)
                          (v128.load align=4
                            (i32.add
                              (i32.add (local.get $src) (i32.mul (local.get $t) (local.get $rowBytes)))
                              (local.get $j))))
                        (local.set $pp (i32.add (local.get $pp) (local.get $panelBytes)))
                        (local.set $j (i32.add (local.get $j) (i32.const 16)))
                        (br $for_j)))
                    (local.set $t (i32.add (local.get $t) (i32.const 1)))
                    (br $for_t)))
                (local.set $row (i32.add (local.get $row) (i32.const 16)))
                (local.set $q (i32.add (local.get $q) (i32.const 1)))
                (br $for_q)))
            (local.set $r (i32.add (local.get $r) (i32.const 1)))
            (br $for_r)))
        (local.set $bi (i32.add (local.get $bi) (i32.const 1)))
        (br $for_bi))))

  ;; col2im: adds row k of $dst (kh segments, pixel by pixel) back where im2col read it, into a zeroed
  ;; padded dx at $x. ($unused keeps the patch kernels' parameter list.)
  (func $col2im (export "col2im")
    (param $x i32) (param $dst i32) (param $nb i32) (param $oh i32) (param $ow i32) (param $kh i32)
    (param $rowBytes i32) (param $segBytes i32) (param $colStep i32) (param $rowStep i32) (param $imgBytes i32)
    (param $unused i32)
    (local $bi i32) (local $r i32) (local $q i32) (local $t i32) (local $j i32) (local $src i32) (local $row i32)
    (local $pp i32)
    (local.set $row (local.get $dst))
    (local.set $bi (i32.const 0))
    (block $done_bi
      (loop $for_bi
        (br_if $done_bi (i32.ge_u (local.get $bi) (local.get $nb)))
        (local.set $r (i32.const 0))
        (block $done_r
          (loop $for_r
            (br_if $done_r (i32.ge_u (local.get $r) (local.get $oh)))
            (local.set $q (i32.const 0))
            (block $done_q
              (loop $for_q
                (br_if $done_q (i32.ge_u (local.get $q) (local.get $ow)))
                (local.set $src
                  (i32.add
                    (i32.add
                      (i32.add (local.get $x) (i32.mul (local.get $bi) (local.get $imgBytes)))
                      (i32.mul (local.get $r) (local.get $rowStep)))
                    (i32.mul (local.get $q) (local.get $colStep))))
                (local.set $pp (local.get $row))
                (local.set $t (i32.const 0))
                (block $done_t
                  (loop $for_t
                    (br_if $done_t (i32.ge_u (local.get $t) (local.get $kh)))
                    (local.set $j (i32.const 0))
                    (block $done_j
                      (loop $for_j
                        (br_if $done_j (i32.ge_u (local.get $j) (local.get $segBytes)))
                        (v128.store align=4
                          (i32.add
                            (i32.add (local.get $src) (i32.mul (local.get $t) (local.get $rowBytes)))
                            (local.get $j))
                          (f32x4.add
                            (v128.load align=4
                              (i32.add
                                (i32.add (local.get $src) (i32.mul (local.get $t) (local.get $rowBytes)))
                                (local.get $j)))
                            (v128.load align=4 (i32.add (local.get $row) (local.get $j)))))
                        (local.set $j (i32.add (local.get $j) (i32.const 16)))
                        (br $for_j)))
                    (local.set $row (i32.add (local.get $row) (local.get $segBytes)))
                    (local.set $t (i32.add (local.get $t) (i32.const 1)))
                    (br $for_t)))
                (local.set $q (i32.add (local.get $q) (i32.const 1)))
                (br $for_q)))
            (local.set $r (i32.add (local.get $r) (i32.const 1)))
            (br $for_r)))
        (local.set $bi (i32.add (local.get $bi) (i32.const 1)))
        (br $for_bi))))

  ;; im2colS: im2col for any segment length, one float at a time: pixel k's tap u goes to
  ;; dst + (k>>2)*P1 + (k&3)*Q1 + (u>>2)*P2 + (u&3)*Q2, which gives either panel layout or plain rows.
  ;; back != 0 runs it as col2im (adds dst into x). For a first layer's 3-float segments.
  (func $im2colS (export "im2colS")
    (param $x i32) (param $dst i32) (param $nb i32) (param $oh i32) (param $ow i32) (param $kh i32)
    (param $rowBytes i32) (param $segBytes i32) (param $colStep i32) (param $rowStep i32) (param $imgBytes i32)
    (param $P1 i32) (param $Q1 i32) (param $P2 i32) (param $Q2 i32) (param $back i32)
    (local $bi i32) (local $r i32) (local $q i32) (local $t i32) (local $j i32) (local $src i32) (local $k i32)
    (local $u i32) (local $kk i32) (local $at i32)
    (local.set $k (i32.const 0))
    (local.set $bi (i32.const 0))
    (block $done_bi
      (loop $for_bi
        (br_if $done_bi (i32.ge_u (local.get $bi) (local.get $nb)))
        (local.set $r (i32.const 0))
        (block $done_r
          (loop $for_r
            (br_if $done_r (i32.ge_u (local.get $r) (local.get $oh)))
            (local.set $q (i32.const 0))
            (block $done_q
              (loop $for_q
                (br_if $done_q (i32.ge_u (local.get $q) (local.get $ow)))
                (local.set $src
                  (i32.add
                    (i32.add
                      (i32.add (local.get $x) (i32.mul (local.get $bi) (local.get $imgBytes)))
                      (i32.mul (local.get $r) (local.get $rowStep)))
                    (i32.mul (local.get $q) (local.get $colStep))))
                (local.set $kk
                  (i32.add
                    (local.get $dst)
                    (i32.add
                      (i32.mul (i32.shr_u (local.get $k) (i32.const 2)) (local.get $P1))
                      (i32.mul (i32.and (local.get $k) (i32.const 3)) (local.get $Q1)))))
                (local.set $u (i32.const 0))
                (local.set $t (i32.const 0))
                (block $done_t
                  (loop $for_t
                    (br_if $done_t (i32.ge_u (local.get $t) (local.get $kh)))
                    (local.set $j (i32.const 0))
                    (block $done_j
                      (loop $for_j
                        (br_if $done_j (i32.ge_u (local.get $j) (local.get $segBytes)))
                        (local.set $at
                          (i32.add
                            (i32.add (local.get $src) (i32.mul (local.get $t) (local.get $rowBytes)))
                            (local.get $j)))
                        (if (local.get $back)
                          (then
                            (f32.store
                              (local.get $at)
                              (f32.add
                                (f32.load (local.get $at))
                                (f32.load
                                  (i32.add
                                    (local.get $kk)
                                    (i32.add
                                      (i32.mul (i32.shr_u (local.get $u) (i32.const 2)) (local.get $P2))
                                      (i32.mul (i32.and (local.get $u) (i32.const 3)) (local.get $Q2))))))))
                          (else
                            (f32.store
                              (i32.add
                                (local.get $kk)
                                (i32.add
                                  (i32.mul (i32.shr_u (local.get $u) (i32.const 2)) (local.get $P2))
                                  (i32.mul (i32.and (local.get $u) (i32.const 3)) (local.get $Q2))))
                              (f32.load (local.get $at)))))
                        (local.set $u (i32.add (local.get $u) (i32.const 1)))
                        (local.set $j (i32.add (local.get $j) (i32.const 4)))
                        (br $for_j)))
                    (local.set $t (i32.add (local.get $t) (i32.const 1)))
                    (br $for_t)))
                (local.set $k (i32.add (local.get $k) (i32.const 1)))
                (local.set $q (i32.add (local.get $q) (i32.const 1)))
                (br $for_q)))
            (local.set $r (i32.add (local.get $r) (i32.const 1)))
            (br $for_r)))
        (local.set $bi (i32.add (local.get $bi) (i32.const 1)))
        (br $for_bi))))

  ;; filterGradImage: for one image, out[ky][kx][c][:] += sum over (r, q) of x[r*s+ky][q*s+kx][c] * dy[r][q][:]
  ;; (x already padded; colStep / rowStep the strides in bytes). For layers with few taps whose output
  ;; channels ($coBytes / 4) are a multiple of 4 but not of 8, which the 8-column tiles do not cover.
  (func $filterGradImage (export "filterGradImage")
    (param $x i32) (param $dy i32) (param $out i32) (param $oh i32) (param $ow i32) (param $kh i32) (param $kw i32)
    (param $ci i32) (param $rowBytes i32) (param $colStep i32) (param $rowStep i32) (param $coBytes i32)
    (local $r i32) (local $q i32) (local $ky i32) (local $kx i32) (local $c i32) (local $j i32) (local $dyRow i32)
    (local $xPix i32) (local $outRow i32) (local $s v128)
    (local.set $r (i32.const 0))
    (block $done_r
      (loop $for_r
        (br_if $done_r (i32.ge_u (local.get $r) (local.get $oh)))
        (local.set $q (i32.const 0))
        (block $done_q
          (loop $for_q
            (br_if $done_q (i32.ge_u (local.get $q) (local.get $ow)))
            (local.set $dyRow
              (i32.add
                (local.get $dy)
                (i32.mul (i32.add (i32.mul (local.get $r) (local.get $ow)) (local.get $q)) (local.get $coBytes))))
            (local.set $xPix
              (i32.add
                (i32.add (local.get $x) (i32.mul (local.get $r) (local.get $rowStep)))
                (i32.mul (local.get $q) (local.get $colStep))))
            (local.set $outRow (local.get $out))
            (local.set $ky (i32.const 0))
            (block $done_ky
              (loop $for_ky
                (br_if $done_ky (i32.ge_u (local.get $ky) (local.get $kh)))
                (local.set $kx (i32.const 0))
                (block $done_kx
                  (loop $for_kx
                    (br_if $done_kx (i32.ge_u (local.get $kx) (local.get $kw)))
                    (local.set $c (i32.const 0))
                    (block $done_c
                      (loop $for_c
                        (br_if $done_c (i32.ge_u (local.get $c) (local.get $ci)))
                        (local.set $s
                          (f32x4.splat
                            (f32.load
                              (i32.add
                                (i32.add (local.get $xPix) (i32.mul (local.get $ky) (local.get $rowBytes)))
                                (i32.mul
                                  (i32.add (i32.mul (local.get $kx) (local.get $ci)) (local.get $c))
                                  (i32.const 4))))))
                        (local.set $j (i32.const 0))
                        (block $done_j
                          (loop $for_j
                            (br_if $done_j (i32.ge_u (local.get $j) (local.get $coBytes)))
                            (v128.store align=4
                              (i32.add (local.get $outRow) (local.get $j))
                              (f32x4.add
                                (v128.load align=4 (i32.add (local.get $outRow) (local.get $j)))
                                (f32x4.mul
                                  (local.get $s)
                                  (v128.load align=4 (i32.add (local.get $dyRow) (local.get $j))))))
                            (local.set $j (i32.add (local.get $j) (i32.const 16)))
                            (br $for_j)))
                        (local.set $outRow (i32.add (local.get $outRow) (local.get $coBytes)))
                        (local.set $c (i32.add (local.get $c) (i32.const 1)))
                        (br $for_c)))
                    (local.set $kx (i32.add (local.get $kx) (i32.const 1)))
                    (br $for_kx)))
                (local.set $ky (i32.add (local.get $ky) (i32.const 1)))
                (br $for_ky)))
            (local.set $q (i32.add (local.get $q) (i32.const 1)))
            (br $for_q)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $for_r)))))
