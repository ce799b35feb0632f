// -log p(x | h) of 8-bit pixels under a discretized logistic, per image, and its
// gradient with respect to h, in one pass over the pixels.
//
// The same function as vae_tf/models/likelihoods.py's `_discretized_logistic_log_prob`
// (see there for the formula), fused: TensorFlow's ops make some forty passes over
// the [N, H, W, 2C] parameters for the loss and its gradient, which on a CPU cost
// about as much as a small network's whole forward pass. Here each image is one
// loop over its pixels, sixteen at a time in Eigen's vector registers.
//
// Inputs:  x [N, ..., C] in [0, 1] (the 8-bit values / 255), h [N, ..., 2C]: for each
//          pixel the C locations, then the C log-scales, before their offsets.
// Outputs: nll [N], and grad [N, ..., 2C] = d nll[n] / d h[n, ...].

#include <algorithm>
#include <vector>

#include "Eigen/Core"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;

REGISTER_OP("VaeTfDiscretizedLogisticNll")
    .Input("x: T")
    .Input("h: T")
    .Output("nll: T")
    .Output("grad: T")
    .Attr("T: {float, double}")
    .Attr("bins: float")
    .Attr("location_offset: float")
    .Attr("log_scale_offset: float")
    .Attr("log_scale_min: float")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->Vector(c->Dim(c->input(0), 0)));
      c->set_output(1, c->input(1));
      return absl::OkStatus();
    });

template <typename T>
class DiscretizedLogisticNll : public OpKernel {
 public:
  explicit DiscretizedLogisticNll(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("bins", &bins_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("location_offset", &location_offset_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("log_scale_offset", &log_scale_offset_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("log_scale_min", &log_scale_min_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& h = ctx->input(1);
    const int rank = x.dims();
    OP_REQUIRES(ctx, rank >= 2 && h.dims() == rank,
                absl::InvalidArgumentError("x and h need the same rank, at least 2"));
    for (int d = 0; d < rank - 1; ++d) {
      OP_REQUIRES(ctx, x.dim_size(d) == h.dim_size(d),
                  absl::InvalidArgumentError("x and h differ in shape"));
    }
    const int64_t channels = x.dim_size(rank - 1);
    OP_REQUIRES(ctx, h.dim_size(rank - 1) == 2 * channels,
                absl::InvalidArgumentError("h needs twice the channels of x"));
    const int64_t batch = x.dim_size(0);
    const int64_t per_image = batch > 0 ? x.NumElements() / batch : 0;
    Tensor* nll = nullptr;
    Tensor* grad = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({batch}), &nll));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, h.shape(), &grad));
    if (per_image == 0) {
      std::fill_n(nll->flat<T>().data(), batch, T(0));
      return;
    }
    const T* xs = x.flat<T>().data();
    const T* hs = h.flat<T>().data();
    T* nlls = nll->flat<T>().data();
    T* grads = grad->flat<T>().data();

    auto images = [&](int64_t begin, int64_t end) {
      constexpr int kLanes = 16;  // elements per step: an AVX-512 register of floats
      using V = Eigen::Array<T, kLanes, 1>;
      const int64_t n = per_image, pixels = per_image / channels;
      const int64_t padded = (n + kLanes - 1) / kLanes * kLanes;
      // One image's values, locations, raw log-scales and the two gradients, each
      // contiguous (h interleaves locations and log-scales pixel by pixel).
      std::vector<T> buffer(5 * padded, T(0));
      T* xb = buffer.data();
      T* mb = xb + padded;
      T* rb = mb + padded;
      T* dmb = rb + padded;
      T* dsb = dmb + padded;
      const T half = T(0.5) / T(bins_), inv_bins = T(1) / T(bins_);
      const T location_offset = location_offset_, log_scale_offset = log_scale_offset_;
      const T log_scale_min = log_scale_min_;
      const T one = T(1), zero = T(0);
      const V ones = V::Constant(one), zeros = V::Constant(zero);
      for (int64_t b = begin; b < end; ++b) {
        const T* hb = hs + b * 2 * n;
        std::copy(xs + b * n, xs + (b + 1) * n, xb);
        for (int64_t p = 0; p < pixels; ++p) {
          for (int64_t c = 0; c < channels; ++c) {
            mb[p * channels + c] = hb[p * 2 * channels + c];
            rb[p * channels + c] = hb[p * 2 * channels + channels + c];
          }
        }
        double total = 0;
        for (int64_t i = 0; i < padded; i += kLanes) {
          const V x = Eigen::Map<const V>(xb + i);
          const V mean = Eigen::Map<const V>(mb + i) + location_offset;
          const V raw = Eigen::Map<const V>(rb + i) + log_scale_offset;
          const V inv_s = (-raw.max(log_scale_min)).exp();
          // a and b of the bin [x - half, x + half], in units of the scale.
          const V plus = inv_s * (x - mean + half);
          const V minus = inv_s * (x - mean - half);
          const V above_bottom = (x > half).select(ones, zeros);
          const V below_top = (x < one - half).select(ones, zeros);
          const V inner = above_bottom * below_top;
          const V e_plus = (-plus.abs()).exp();
          const V e_minus = (-minus.abs()).exp();
          // w = b - a in units of the scale; with t = tanh(w / 2), 1 - e^-w = 2t / (1 + t)
          // and w / (e^w - 1) = w (1 - t) / (2t), both accurate however small w is.
          const V w = inv_s * inv_bins;
          const V t = (T(0.5) * w).tanh();
          const V width = inner * (T(2) * t / (one + t)) + (one - inner);
          // log sigmoid(a) + log(1 - e^-w) - softplus(b), each term where it applies,
          // with softplus(y) = max(y, 0) + log(1 + e^-|y|): one logarithm in all.
          const V log_p = (width / ((one + below_top * e_plus) * (one + above_bottom * e_minus))).log()
                          - below_top * (-plus).max(zero) - above_bottom * minus.max(zero);
          if (i + kLanes <= n) {
            total += log_p.sum();
          } else {
            for (int64_t j = 0; i + j < n; ++j) total += log_p[j];
          }
          const V sigmoid_minus_a = (plus >= zero).select(e_plus, ones) / (one + e_plus);
          const V sigmoid_b = (minus >= zero).select(ones, e_minus) / (one + e_minus);
          const V ga = below_top * sigmoid_minus_a;
          const V gb = above_bottom * sigmoid_b;
          // d(-log p)/d location, and d(-log p)/d log-scale: zero where it is clamped.
          Eigen::Map<V>(dmb + i) = inv_s * (ga - gb);
          Eigen::Map<V>(dsb + i) = (raw > log_scale_min).select(
              ga * plus - gb * minus + inner * w * (one - t) / (T(2) * t), zeros);
        }
        nlls[b] = T(-total);
        T* gout = grads + b * 2 * n;
        for (int64_t p = 0; p < pixels; ++p) {
          for (int64_t c = 0; c < channels; ++c) {
            gout[p * 2 * channels + c] = dmb[p * channels + c];
            gout[p * 2 * channels + channels + c] = dsb[p * channels + c];
          }
        }
      }
    };
    const auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    // About 100 cycles an element (three exponentials, a tanh, a logarithm, divisions).
    tensorflow::Shard(workers->num_threads, workers->workers, batch, 100 * per_image, images);
  }

 private:
  float bins_, location_offset_, log_scale_offset_, log_scale_min_;
};

REGISTER_KERNEL_BUILDER(Name("VaeTfDiscretizedLogisticNll")
                            .Device(tensorflow::DEVICE_CPU)
                            .TypeConstraint<float>("T"),
                        DiscretizedLogisticNll<float>);
REGISTER_KERNEL_BUILDER(Name("VaeTfDiscretizedLogisticNll")
                            .Device(tensorflow::DEVICE_CPU)
                            .TypeConstraint<double>("T"),
                        DiscretizedLogisticNll<double>);

}  // namespace
