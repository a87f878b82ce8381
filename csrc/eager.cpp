// The module fusedsched._C and its one function, launch: the op advance_native_ called from eager
// Python without torch.ops' Python layer.
//
// `import fusedsched._C` loads this library, whose static registrations (advance.cpp,
// cuda/advance.cu, graphsafe_adam.cpp) define the ops; the module adds
// launch(step, table, lrs, increment, amount=None, skip=None, plateau=None, metric=None,
// previous_scale=None), positional, which unpacks its arguments in C and calls advance_native_ (when
// the last five are None) or advance_native_.clock through the C++ dispatcher: the same kernels, the same
// checks, the same dispatch (device, modes), for about a tenth of torch.ops' per-call cost in
// Python (which parses the schema's arguments one by one). torch.compile cannot trace it: code it
// traces calls the op through torch.ops (ops/_native.py's traceable_launch).
#include <Python.h>

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>

#include <optional>

namespace fusedsched {
namespace {

using OptionalTensor = std::optional<at::Tensor>;

// A tensor argument into `out`; false with a TypeError set when `obj` is not a tensor.
bool unpack_tensor(PyObject* obj, const char* name, at::Tensor& out) {
  if (!THPVariable_Check(obj)) {
    PyErr_Format(PyExc_TypeError, "fusedsched._C.launch: %s must be a tensor, got %s", name, Py_TYPE(obj)->tp_name);
    return false;
  }
  out = THPVariable_Unpack(obj);
  return true;
}

bool unpack_optional(PyObject* obj, const char* name, OptionalTensor& out) {
  if (obj == Py_None) {
    return true;
  }
  at::Tensor tensor;
  if (!unpack_tensor(obj, name, tensor)) {
    return false;
  }
  out = std::move(tensor);
  return true;
}

PyObject* launch(PyObject* /*module*/, PyObject* const* args, Py_ssize_t nargs) {
  HANDLE_TH_ERRORS
  if (nargs < 4 || nargs > 9) {
    PyErr_Format(
        PyExc_TypeError,
        "fusedsched._C.launch takes 4 to 9 positional arguments (step, table, lrs, increment, amount=None, "
        "skip=None, plateau=None, metric=None, previous_scale=None), got %zd",
        nargs);
    return nullptr;
  }
  at::Tensor step, table, lrs;
  if (!unpack_tensor(args[0], "step", step) || !unpack_tensor(args[1], "table", table) ||
      !unpack_tensor(args[2], "lrs", lrs)) {
    return nullptr;
  }
  if (!PyLong_Check(args[3])) {
    PyErr_Format(PyExc_TypeError, "fusedsched._C.launch: increment must be an int, got %s", Py_TYPE(args[3])->tp_name);
    return nullptr;
  }
  const int64_t increment = PyLong_AsLongLong(args[3]);
  if (increment == -1 && PyErr_Occurred()) {
    return nullptr;
  }
  PyObject* optional[5] = {Py_None, Py_None, Py_None, Py_None, Py_None};
  for (Py_ssize_t i = 4; i < nargs; ++i) {
    optional[i - 4] = args[i];
  }
  if (optional[0] == Py_None && optional[1] == Py_None && optional[2] == Py_None && optional[3] == Py_None &&
      optional[4] == Py_None) {
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("fusedsched::advance_native_", "")
                         .typed<void(at::Tensor&, const at::Tensor&, at::Tensor&, int64_t)>();
    op.call(step, table, lrs, increment);
    Py_RETURN_NONE;
  }
  OptionalTensor amount, skip, plateau, metric, previous_scale;
  if (!unpack_optional(optional[0], "amount", amount) || !unpack_optional(optional[1], "skip", skip) ||
      !unpack_optional(optional[2], "plateau", plateau) || !unpack_optional(optional[3], "metric", metric) ||
      !unpack_optional(optional[4], "previous_scale", previous_scale)) {
    return nullptr;
  }
  static auto clock = c10::Dispatcher::singleton()
                          .findSchemaOrThrow("fusedsched::advance_native_", "clock")
                          .typed<void(
                              at::Tensor&, const at::Tensor&, at::Tensor&, int64_t, const OptionalTensor&,
                              const OptionalTensor&, const OptionalTensor&, const OptionalTensor&,
                              const OptionalTensor&)>();
  clock.call(step, table, lrs, increment, amount, skip, plateau, metric, previous_scale);
  Py_RETURN_NONE;
  END_HANDLE_TH_ERRORS
}

PyMethodDef methods[] = {
    {"launch", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&launch)), METH_FASTCALL,
     "launch($module, step, table, lrs, increment, amount=None, skip=None, plateau=None, metric=None, "
     "previous_scale=None, /)\n--\n\n"
     "advance_native_ (or, with any of the last five, advance_native_.clock) from eager Python."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace
}  // namespace fusedsched

extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT,
      "_C",  // name
      "fusedsched native ops (torch.ops.fusedsched) and launch, their eager entry point",  // doc
      -1,  // size of per-interpreter state
      fusedsched::methods,
  };
  return PyModule_Create(&module_def);
}
}
