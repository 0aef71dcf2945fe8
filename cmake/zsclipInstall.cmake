include(CMakePackageConfigHelpers)
set(ZSCLIP_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/zsclip)
install(TARGETS ${ZSCLIP_INSTALL_TARGETS} EXPORT zsclipTargets
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/zsclip DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_BINARY_DIR}/include/zsclip/version.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/zsclip)
# zsclip_utf8proc is a private link dependency of a static library: export it too.
install(TARGETS zsclip_utf8proc zsclip_sentencepiece EXPORT zsclipTargets)
install(EXPORT zsclipTargets NAMESPACE zsclip:: DESTINATION ${ZSCLIP_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/zsclipConfig.cmake.in
  ${PROJECT_BINARY_DIR}/zsclipConfig.cmake INSTALL_DESTINATION ${ZSCLIP_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/zsclipConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/zsclipConfig.cmake ${PROJECT_BINARY_DIR}/zsclipConfigVersion.cmake
  DESTINATION ${ZSCLIP_CMAKE_DIR})
if(EXISTS ${PROJECT_SOURCE_DIR}/models/shapes/config.json)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/models/shapes DESTINATION ${CMAKE_INSTALL_DATADIR}/zsclip/models
    PATTERN "*.md" EXCLUDE)
endif()
